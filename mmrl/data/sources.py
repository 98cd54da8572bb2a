"""The sources of the benchmark datasets (``datasets/sources.yaml``) and the overrides that
extend or replace them (``--sources FILE``, ``MMRL_DATA_SOURCES``).

An override file has the format of ``datasets/sources.yaml``, plus two optional top-level keys:

- ``replace: true``: the file replaces the defaults instead of extending them;
- ``mirror: URL-or-folder``: every file is fetched from ``<mirror>/<file name>`` (an http(s) or
  ``file://`` URL, or a local folder), unless the override gives that file its own ``url``.

A dataset or file named in an override is merged into the default of the same name: the keys
given replace the default's (a new ``md5``, ``sha256`` or ``size`` replaces all three, since they
describe one file; a new ``url`` or ``drive`` replaces both). Files the defaults do not have are
added.
"""
import copy
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import yaml

from mmrl.cli import UserError

SOURCES_ENV = "MMRL_DATA_SOURCES"
_INTEGRITY = ("md5", "sha256", "size", "published")
_WHERE = ("url", "drive")
_FILE_KEYS = {"name", "place", "extract", *_INTEGRITY, *_WHERE}
_DATASET_KEYS = {"dataset", "needs_from", "files"}


def default_sources_path() -> str:
    """``sources.yaml`` of the repository's ``datasets`` package (next to the dataset classes)."""
    import datasets

    return os.path.join(os.path.dirname(os.path.abspath(datasets.__file__)), "sources.yaml")


@dataclass
class FileSource:
    dataset: str
    name: str
    url: str = ""
    drive: str = ""
    size: Optional[int] = None
    md5: str = ""
    sha256: str = ""
    published: str = ""
    place: str = ""
    extract: Dict[str, str] = field(default_factory=dict)

    @property
    def is_archive(self) -> bool:
        return bool(self.extract)

    @property
    def where(self) -> str:
        """The source as a user would paste it into a browser or a shell."""
        if self.url:
            return self.url
        return f"https://drive.google.com/file/d/{self.drive}"

    @property
    def verification(self) -> str:
        """How a download of this file is verified, for ``--list``."""
        if self.md5 or self.sha256:
            kind = "md5" if self.md5 else "sha256"
            return self.published or f"{kind} (given by a sources override)"
        if self.size is not None:
            return "size-checked only"
        return "unverified"


@dataclass
class DatasetSource:
    key: str
    dataset: str
    files: List[FileSource]
    needs_from: bool = False


def _read(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise UserError(f"sources file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise UserError(f"sources file {path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise UserError(f"sources file {path} must hold a mapping with a 'datasets' key")
    unknown = set(data) - {"datasets", "replace", "mirror"}
    if unknown:
        raise UserError(f"sources file {path}: unknown top-level key(s) {sorted(unknown)}; "
                        "expected datasets, replace, mirror")
    if not isinstance(data.get("datasets", {}), dict):
        raise UserError(f"sources file {path}: 'datasets' must map dataset names to their files")
    return data


def _merge_file(base: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    if any(k in new for k in _INTEGRITY):
        for k in _INTEGRITY:
            out.pop(k, None)
    if any(k in new for k in _WHERE):
        for k in _WHERE:
            out.pop(k, None)
    out.update(new)
    return out


def _merge(base: Dict[str, Any], new: Dict[str, Any], path: str) -> Dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, spec in new.items():
        if not isinstance(spec, dict):
            raise UserError(f"sources file {path}: datasets.{key} must be a mapping")
        if key not in merged:
            merged[key] = copy.deepcopy(spec)
            continue
        target = merged[key]
        for k, v in spec.items():
            if k != "files":
                target[k] = v
        files = {f.get("name"): f for f in target.get("files", [])}
        order = [f.get("name") for f in target.get("files", [])]
        for i, entry in enumerate(spec.get("files") or []):
            if not isinstance(entry, dict) or "name" not in entry:
                raise UserError(f"sources file {path}: datasets.{key}.files[{i}] needs a 'name'")
            name = entry["name"]
            if name in files:
                files[name] = _merge_file(files[name], entry)
            else:
                files[name] = dict(entry)
                order.append(name)
        target["files"] = [files[n] for n in order]
    return merged


def _with_mirror(data: Dict[str, Any], mirror: str, explicit: Dict[str, set]) -> None:
    base = mirror.rstrip("/")
    for key, spec in data.items():
        for entry in spec.get("files", []):
            if entry.get("name") in explicit.get(key, set()):
                continue
            entry.pop("drive", None)
            entry["url"] = f"{base}/{entry['name']}"


def _build(data: Dict[str, Any], origin: str) -> Dict[str, DatasetSource]:
    out: Dict[str, DatasetSource] = {}
    for key, spec in data.items():
        where = f"{origin}: datasets.{key}"
        unknown = set(spec) - _DATASET_KEYS
        if unknown:
            raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(_DATASET_KEYS)}")
        if not spec.get("dataset"):
            raise UserError(f"{where} needs 'dataset' (the registered dataset class, e.g. Caltech101)")
        files = []
        for i, entry in enumerate(spec.get("files") or []):
            fwhere = f"{where}.files[{i}] ({entry.get('name', '?')})"
            unknown = set(entry) - _FILE_KEYS
            if unknown:
                raise UserError(f"{fwhere}: unknown key(s) {sorted(unknown)}; expected {sorted(_FILE_KEYS)}")
            if bool(entry.get("url")) == bool(entry.get("drive")):
                raise UserError(f"{fwhere}: give exactly one of 'url' and 'drive'")
            if bool(entry.get("place")) == bool(entry.get("extract")):
                raise UserError(f"{fwhere}: give exactly one of 'place' (a plain file) and 'extract' (an archive)")
            size = entry.get("size")
            if size is not None and (not isinstance(size, int) or size < 0):
                raise UserError(f"{fwhere}: size must be a number of bytes, got {size!r}")
            extract = entry.get("extract") or {}
            if not isinstance(extract, dict):
                raise UserError(f"{fwhere}: extract must map archive paths to dataset paths")
            for dest in [entry.get("place") or ".", *extract.values()]:
                norm = posixpath.normpath(str(dest))
                if posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
                    raise UserError(f"{fwhere}: {dest!r} is outside the dataset folder; give a path inside it")
            files.append(FileSource(
                dataset=key, name=str(entry["name"]), url=str(entry.get("url") or ""),
                drive=str(entry.get("drive") or ""), size=size, md5=str(entry.get("md5") or "").lower(),
                sha256=str(entry.get("sha256") or "").lower(), published=str(entry.get("published") or ""),
                place=str(entry.get("place") or ""), extract={str(k): str(v) for k, v in extract.items()},
            ))
        out[key] = DatasetSource(key=key, dataset=str(spec["dataset"]), files=files,
                                 needs_from=bool(spec.get("needs_from")))
    _check_shared_names(out, origin)
    return out


def _check_shared_names(sources: Dict[str, DatasetSource], origin: str) -> None:
    """Files share ``$DATA/.downloads/<name>``: one name must mean one file everywhere."""
    seen: Dict[str, FileSource] = {}
    for spec in sources.values():
        for f in spec.files:
            other = seen.setdefault(f.name, f)
            if (other.url, other.drive, other.md5, other.sha256, other.size) != (f.url, f.drive, f.md5, f.sha256, f.size):
                raise UserError(
                    f"{origin}: the file name {f.name} has two different sources (datasets {other.dataset} "
                    f"and {f.dataset}); give them the same source or different names"
                )


def load_sources(overrides: Sequence[str] = (), default: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None) -> Dict[str, DatasetSource]:
    """The defaults, then every file of ``MMRL_DATA_SOURCES`` (os.pathsep-separated), then
    ``overrides``, each extending (or, with ``replace: true``, replacing) what came before."""
    env = os.environ if env is None else env
    default = default or default_sources_path()
    data = _read(default).get("datasets", {}) or {}
    paths = [p for p in env.get(SOURCES_ENV, "").split(os.pathsep) if p] + list(overrides)
    origin = default
    for path in paths:
        override = _read(path)
        new = override.get("datasets") or {}
        data = copy.deepcopy(new) if override.get("replace") else _merge(data, new, path)
        if override.get("mirror"):
            explicit = {k: {f.get("name") for f in (v.get("files") or []) if "url" in f or "drive" in f}
                        for k, v in new.items() if isinstance(v, dict)}
            _with_mirror(data, str(override["mirror"]), explicit)
        origin = path
    return _build(data, origin if len(paths) <= 1 else " + ".join([default, *paths]))
