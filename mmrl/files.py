"""Writing files so that a reader never sees half of one, torch-free: the engine, the result
record and the caches all write through here (``mmrl.dassl.utils`` keeps Dassl's names for them)."""
import errno
import os
import os.path as osp
import shutil
import tempfile
from typing import IO, Callable, Optional


def mkdir_if_missing(dirname: str) -> None:
    """Create ``dirname`` (and parents) unless it exists; empty name is a no-op."""
    if not dirname or osp.isdir(dirname):
        return
    try:
        os.makedirs(dirname)
    except OSError as e:
        # Another process may have created it in between.
        if e.errno != errno.EEXIST:
            raise


def _fsync_dir(dirname: str) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))


def created_file_mode() -> int:
    """The mode ``open()`` gives a new file under the user's umask (0666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _no_space_error(fpath: str, dirname: str, err: OSError, needed: Optional[int], written: int) -> OSError:
    try:
        # What is free once the partial temporary file (``written`` bytes) is removed.
        free = _human(shutil.disk_usage(dirname).free + written)
    except OSError:
        free = "unknown"
    need = _human(needed) if needed is not None else f"more than {_human(written)}"
    error = OSError(
        f'Cannot write "{fpath}": {err.strerror}. It needs {need}; {free} is free in "{dirname}". '
        "The previous file of that name (if any) is unchanged; free some space and rerun the same command."
    )
    error.errno = err.errno
    return error


def atomic_write(fpath: str, write_fn: Callable[[IO[bytes]], None], size: Optional[int] = None) -> None:
    """Write ``fpath`` so that readers see either the old or the complete new file.

    ``write_fn`` receives a binary file object in the same folder; the file is
    flushed, fsynced and renamed over ``fpath``. On any error the temporary
    file is removed and the previous ``fpath`` is left untouched; a full disk
    (or file-size limit) is reported with the path and the space needed
    (``size`` when the caller knows it). The file gets the user's umask, as
    ``open()`` would give it (the temporary file is created 0600).
    """
    dirname = osp.dirname(osp.abspath(fpath))
    mkdir_if_missing(dirname)
    fd, tmp_path = tempfile.mkstemp(
        dir=dirname, prefix="." + osp.basename(fpath) + ".", suffix=".tmp"
    )
    written = 0
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                os.fchmod(f.fileno(), created_file_mode())
                write_fn(f)
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                if e.errno not in _NO_SPACE_ERRNOS:
                    raise
                written = osp.getsize(tmp_path) if osp.exists(tmp_path) else 0
                raise _no_space_error(fpath, dirname, e, size, written) from None
        os.replace(tmp_path, fpath)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_dir(dirname)


def atomic_write_bytes(fpath: str, data: bytes) -> None:
    """:func:`atomic_write` of bytes already in memory (so a full disk names the exact size)."""
    atomic_write(fpath, lambda f: f.write(data), size=len(data))
