"""Checks of a run's folders before anything is built, so a bad path costs seconds, not a run."""
from __future__ import annotations

import os
import os.path as osp
import tempfile
from typing import Any


def check_output_dir(path: str) -> None:
    """Create ``path`` if needed and prove a file can be written in it; an OSError naming the
    folder and the reason otherwise (a parent or the folder itself is a file, no permission, a
    read-only file system, a full disk)."""
    if not path:
        raise ValueError("OUTPUT_DIR is empty: pass --output-dir")
    folder = osp.abspath(osp.expanduser(path))
    if osp.exists(folder) and not osp.isdir(folder):
        raise NotADirectoryError(f'The output folder "{folder}" is a file; pass another --output-dir')
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        blocker = _file_in_the_way(folder)
        reason = f'"{blocker}" is a file, not a folder' if blocker else e.strerror
        raise type(e)(
            f'Cannot write into the output folder "{folder}": {reason}. Pass another --output-dir, '
            "or fix its permissions."
        ) from None


def _file_in_the_way(folder: str) -> str:
    parent = folder
    while parent and parent != osp.dirname(parent):
        if osp.exists(parent) and not osp.isdir(parent):
            return parent
        parent = osp.dirname(parent)
    return ""


def check_resume_dir(cfg: Any) -> None:
    """``RESUME`` (``--resume``) names a folder to continue: it must exist."""
    if cfg.RESUME and osp.exists(cfg.RESUME) and not osp.isdir(cfg.RESUME):
        raise NotADirectoryError(
            f'--resume "{cfg.RESUME}" is a file, not a run folder; pass the output folder of the run to '
            "resume (the one that holds log.txt and the model folder), or drop --resume to train from scratch"
        )
    if cfg.RESUME and not osp.isdir(cfg.RESUME):
        raise FileNotFoundError(
            f'--resume "{cfg.RESUME}" does not exist; pass the output folder of the run to '
            "resume, or drop --resume to train from scratch"
        )


def check_run_folders(cfg: Any) -> None:
    check_resume_dir(cfg)
    check_output_dir(cfg.OUTPUT_DIR)
