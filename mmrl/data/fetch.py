"""Getting one file of a dataset onto disk safely: download (gdown, resumable) or copy, verify,
extract with every member path checked, and move into place.

Everything in flight lives in ``$DATA/.downloads/``: a download is written to
``<name>.unverified`` (gdown keeps its partial bytes beside it as ``<name>.unverified*.part``
and resumes them), renamed to ``<name>`` only once its checksum holds (or its size, where no
checksum is published; an HTML page is refused whatever the file); an archive is
extracted into ``<name>.extract/`` and each of its folders is then renamed into the dataset
folder, so a dataset folder only ever holds complete pieces.
"""
import errno
import glob
import hashlib
import json
import os
import posixpath
import shutil
import tarfile
import urllib.parse
import zipfile
from typing import List, Optional, Tuple

from mmrl.cli import UserError
from mmrl.data.benchmark import DATASETS_DOC
from mmrl.data.sources import SOURCES_ENV, FileSource

DOWNLOADS = ".downloads"
UNVERIFIED = ".unverified"
EXTRACTING = ".extract"
PLACED = ".placed"
ALTERNATIVE = (f"point --sources (or {SOURCES_ENV}) at a mirror of this file, or follow the manual "
               f"steps in {DATASETS_DOC}")


class FetchError(UserError):
    """A file of a dataset could not be got; the message names the file, the source, what was
    received and what to do."""


def human(n: Optional[float]) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def _fail(src: FileSource, what: str) -> FetchError:
    return FetchError(f"{src.dataset}: {src.name} from {src.where}: {what}; {ALTERNATIVE}")


def ensure_space(folder: str, needed: int, what: str) -> None:
    """Stop before writing ``needed`` bytes into ``folder`` when its file system has fewer free."""
    os.makedirs(folder, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UserError(
            f"not enough free disk space in {folder}: {what} needs {needed:,} bytes ({human(needed)}), "
            f"{free:,} bytes ({human(free)}) are free; free some space or use another --root"
        )


def file_digest(path: str, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def partial_bytes(downloads: str, name: str) -> int:
    """Bytes of ``name`` already on disk from an interrupted download (gdown's partial files)."""
    total = 0
    stem = name + UNVERIFIED
    if os.path.isdir(downloads):
        for entry in os.listdir(downloads):
            if entry.startswith(stem) and (entry.endswith(".part") or entry == stem):
                total = max(total, os.path.getsize(os.path.join(downloads, entry)))
    return total


def _local_path(url: str) -> Optional[str]:
    """The local file a ``file://`` URL or a plain path names (None for http/https)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    return os.path.expanduser(url)


def _transfer(src: FileSource, output: str, quiet: bool) -> None:
    """Bring the bytes of ``src`` to ``output``: gdown for Drive ids and http(s) URLs (it resumes
    an interrupted download from its partial file), a copy for local files."""
    import gdown
    import requests

    local = _local_path(src.url) if src.url else None
    if local is not None:
        if not os.path.isfile(local):
            raise _fail(src, "no such local file")
        from tqdm import tqdm

        partial = output + ".copying"
        with open(local, "rb") as fin, open(partial, "wb") as fout, tqdm.wrapattr(
                fout, "write", total=os.path.getsize(local), desc=f"  copying {src.name}", disable=quiet or None) as out:
            shutil.copyfileobj(fin, out, 1 << 20)
        os.replace(partial, output)
        return
    kwargs = dict(id=src.drive) if src.drive else dict(url=src.url)
    for attempt in (1, 2):
        try:
            gdown.download(output=output, quiet=quiet, resume=True, **kwargs)
            return
        except requests.HTTPError as err:
            response = err.response
            code = f"HTTP {response.status_code} {response.reason}" if response is not None else str(err)
            raise _fail(src, f"the server answered {code}") from None
        except requests.ConnectionError as err:
            raise _fail(src, f"could not connect ({type(err).__name__})") from None
        except requests.Timeout:
            raise _fail(src, "the server stopped answering (timeout)") from None
        except gdown.exceptions.FileURLRetrievalError:
            raise _fail(src, "Google Drive did not hand out the file (a moved or private file, or its "
                             "daily download quota is used up; retry later)") from None
        except gdown.exceptions.DownloadError as err:
            # A server that ignores byte ranges cannot resume: start the file again once.
            if attempt == 1 and "byte range" in str(err):
                _remove_partials(os.path.dirname(output), os.path.basename(output))
                continue
            raise _fail(src, " ".join(str(err).split())) from None


def _remove_partials(folder: str, stem: str) -> None:
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            if entry.startswith(stem) and entry != stem:
                os.remove(os.path.join(folder, entry))


def _html_page(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(2048).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<") and b"<html" in head)


def verify(src: FileSource, path: str) -> str:
    """Check a finished download; returns how it was verified. A file that fails is deleted,
    so that the next run downloads it again rather than trusting or resuming it."""
    size = os.path.getsize(path)
    problem = None
    if not src.name.lower().endswith((".html", ".htm")) and _html_page(path):
        problem = f"received an HTML page of {human(size)} instead of the file (a moved link, a login or quota page)"
    elif src.md5 and file_digest(path, "md5") != src.md5:
        problem = f"checksum mismatch: md5 of the {size:,} bytes received is not the published {src.md5}"
    elif src.sha256 and file_digest(path, "sha256") != src.sha256:
        problem = f"checksum mismatch: sha256 of the {size:,} bytes received is not the published {src.sha256}"
    elif not (src.md5 or src.sha256) and src.size is not None and size != src.size:
        problem = f"received {size:,} bytes, expected {src.size:,}"
    if problem:
        os.remove(path)
        raise _fail(src, problem)
    if src.md5 or src.sha256:
        return "md5 verified" if src.md5 else "sha256 verified"
    return "size verified (no checksum published)" if src.size is not None else "unverified (no checksum published)"


def fetch(src: FileSource, downloads: str, quiet: bool = False) -> str:
    """The verified file of ``src`` in ``downloads`` (downloaded when it is not there yet)."""
    final = os.path.join(downloads, src.name)
    if os.path.isfile(final):
        return final
    os.makedirs(downloads, exist_ok=True)
    if src.size is not None:
        ensure_space(downloads, max(src.size - partial_bytes(downloads, src.name), 0), src.name)
    staged = final + UNVERIFIED
    verb = "copying" if src.url and _local_path(src.url) is not None else (
        "resuming" if partial_bytes(downloads, src.name) else "downloading")
    print(f"  {src.name}: {verb} from {src.where}", flush=True)
    _transfer(src, staged, quiet)
    how = verify(src, staged)
    os.replace(staged, final)
    _remove_partials(downloads, os.path.basename(staged))  # left by an earlier try from another source
    print(f"  {src.name}: {how}", flush=True)
    return final


# --- archives -------------------------------------------------------------------------------

def _escapes(name: str) -> bool:
    name = name.replace("\\", "/")
    norm = posixpath.normpath(name)
    return name.startswith("/") or norm == ".." or norm.startswith("../") or (len(name) > 1 and name[1] == ":")


def _check_members(names: List[Tuple[str, str]], src: FileSource) -> None:
    """Refuse a member that would land outside the extraction folder: an absolute path, a
    ``..`` path, or a link pointing out (``names``: (member name, link target or "") pairs)."""
    for name, link in names:
        if _escapes(name):
            raise _refused(src, name)
        if link and _escapes(posixpath.join(posixpath.dirname(name), link)):
            raise _refused(src, f"{name} -> {link}")


def _refused(src: FileSource, member: str) -> FetchError:
    return FetchError(
        f"{src.dataset}: {src.name} from {src.where}: refused to extract the member {member!r}, which would land "
        f"outside the extraction folder; this is not the published archive; {ALTERNATIVE}"
    )


def _extract_all(path: str, target: str, src: FileSource, downloads: str) -> None:
    """Check every member, check the free space for the extracted bytes, then extract (one
    listing and one extraction pass over the archive)."""
    from tqdm import tqdm

    def bar(items: list):
        return tqdm(items, total=len(items), unit="file", desc=f"  extracting {src.name}", leave=False,
                    disable=None)

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_members([(i.filename, "") for i in infos], src)
            ensure_space(downloads, sum(i.file_size for i in infos), f"extracting {src.name}")
            for info in bar(infos):
                zf.extract(info, target)
        return
    try:
        with tarfile.open(path) as tf:
            members = tf.getmembers()
            _check_members([(m.name, m.linkname if m.issym() else "") for m in members], src)
            _check_members([(m.linkname, "") for m in members if m.islnk()], src)
            ensure_space(downloads, sum(m.size for m in members), f"extracting {src.name}")
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tf.extractall(target, members=bar(members), **kwargs)
    except tarfile.TarError as err:
        os.remove(path)
        raise _fail(src, f"not a readable tar or zip archive ({err}); it was deleted, run again to download it again") from None


def _marker(downloads: str, name: str) -> str:
    return os.path.join(downloads, name + PLACED)


def placed(src: FileSource, dataset_dir: str, downloads: str) -> bool:
    """Whether this file's part of the dataset is already in the dataset folder."""
    if not src.is_archive:
        return os.path.exists(os.path.join(dataset_dir, src.place))
    marker = _marker(downloads, src.name)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            paths = json.load(f)
        return all(os.path.exists(os.path.join(dataset_dir, p)) for p in paths)
    if any(_is_pattern(k) for k in src.extract):
        return False
    return all(os.path.exists(os.path.join(dataset_dir, v)) for v in src.extract.values())


def _is_pattern(path: str) -> bool:
    return any(c in path for c in "*?[")


def _move(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.rename(source, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        # Another file system (a dataset folder that is a link elsewhere): copy beside the
        # target under a hidden name, then rename, so the target still appears whole.
        partial = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.move(source, partial)
        os.rename(partial, target)


def extract(src: FileSource, archive: str, dataset_dir: str, downloads: str) -> List[str]:
    """Extract ``archive`` into its staging folder and rename its pieces into ``dataset_dir``;
    returns the dataset paths it placed (pieces already there are kept as they are)."""
    staging = os.path.join(downloads, src.name + EXTRACTING)
    shutil.rmtree(staging, ignore_errors=True)  # what a killed run left
    try:
        _extract_all(archive, staging, src, downloads)
        moves = _pieces(src, staging)
    except FetchError:
        # Not the archive the sources describe: nothing of it stays, a rerun fetches it again.
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.exists(archive):
            os.remove(archive)
        raise
    for source, rel in moves:
        target = os.path.join(dataset_dir, rel)
        if not os.path.exists(target):
            _move(source, target)
    paths = [rel for _, rel in moves]
    with open(_marker(downloads, src.name) + ".tmp", "w", encoding="utf-8") as f:
        json.dump(paths, f)
    os.replace(_marker(downloads, src.name) + ".tmp", _marker(downloads, src.name))
    shutil.rmtree(staging, ignore_errors=True)
    return paths


def _pieces(src: FileSource, staging: str) -> List[Tuple[str, str]]:
    """(extracted path, dataset path) of every piece the ``extract`` rules of ``src`` name."""
    moves: List[Tuple[str, str]] = []
    for pattern, dest in src.extract.items():
        if _is_pattern(pattern):
            matches = sorted(glob.glob(os.path.join(staging, pattern), recursive=True))
            matches = [m for m in matches if "__MACOSX" not in m.split(os.sep)]
            if not matches:
                raise _fail(src, f"the archive holds nothing matching {pattern!r} (its layout changed?)")
            moves += [(m, posixpath.normpath(posixpath.join(dest, os.path.basename(m)))) for m in matches]
        else:
            if not os.path.exists(os.path.join(staging, pattern)):
                raise _fail(src, f"the archive has no {pattern!r} (its layout changed?)")
            moves.append((os.path.join(staging, pattern), posixpath.normpath(dest)))
    return moves


def place(src: FileSource, path: str, dataset_dir: str) -> None:
    """Copy a plain downloaded file into the dataset folder (atomically: a hidden copy renamed)."""
    target = os.path.join(dataset_dir, src.place)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.partial")
    shutil.copyfile(path, partial)
    os.replace(partial, target)
