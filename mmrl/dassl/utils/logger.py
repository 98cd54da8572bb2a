"""Tee ``sys.stdout`` into ``<output>/log.txt``."""
from __future__ import annotations

import os
import os.path as osp
import sys
import time
from typing import Any, Optional, TextIO

from .tools import mkdir_if_missing


class Logger:
    """Writes to the console and to a file; ``flush`` also fsyncs the file."""

    def __init__(self, fpath: Optional[str] = None) -> None:
        self.console: TextIO = sys.stdout
        self.file: Optional[TextIO] = None
        if fpath is not None:
            mkdir_if_missing(osp.dirname(fpath))
            self.file = open(fpath, "w")

    def __del__(self) -> None:
        self.close_file()

    def write(self, msg: str) -> None:
        self.console.write(msg)
        if self.file is not None:
            self.file.write(msg)

    def flush(self) -> None:
        self.console.flush()
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close_file(self) -> None:
        """Close the log file but leave the console alone."""
        if getattr(self, "file", None) is not None:
            self.file.flush()
            self.file.close()
            self.file = None

    def close(self) -> None:
        self.close_file()

    def __getattr__(self, name: str) -> Any:
        # isatty, encoding, fileno ... are the console's.
        console = self.__dict__.get("console")
        if console is None:
            raise AttributeError(name)
        return getattr(console, name)


def _log_path(output: str) -> str:
    if output.endswith(".txt") or output.endswith(".log"):
        fpath = output
    else:
        fpath = osp.join(output, "log.txt")
    if osp.exists(fpath):
        # Keep the first log (results parsers read it); the new one is timestamped.
        stamped = fpath + time.strftime("-%Y-%m-%d-%H-%M-%S")
        candidate, n = stamped, 1
        while osp.exists(candidate):
            candidate = f"{stamped}-{n}"
            n += 1
        fpath = candidate
    return fpath


def setup_logger(output: Optional[str] = None) -> Optional[str]:
    """Tee stdout into ``output/log.txt`` (or ``output`` itself if it ends in
    .txt/.log). Returns the log file's path.

    Calling it again in the same process replaces the previous tee instead of
    stacking one inside another.
    """
    if output is None:
        return None
    fpath = _log_path(output)
    current = sys.stdout
    if isinstance(current, Logger):
        current.flush()
        current.close_file()
        sys.stdout = current.console
    sys.stdout = Logger(fpath)
    return fpath


def restore_stdout() -> None:
    """Undo ``setup_logger``: close the log file and restore the console."""
    current = sys.stdout
    while isinstance(current, Logger):
        current.flush()
        current.close_file()
        current = current.console
    sys.stdout = current
