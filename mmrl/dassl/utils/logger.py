"""Tee ``sys.stdout`` into ``<output>/log.txt``."""
from __future__ import annotations

import os
import os.path as osp
import sys
import time
from typing import Any, Optional, TextIO

from .tools import mkdir_if_missing


class Logger:
    """Writes to the console and to a file; ``flush`` also fsyncs the file.

    The file is line-buffered and every complete line also flushes the console, so whatever a
    run printed is on disk (and in a scheduler's log) even if the process is killed right after.
    """

    def __init__(self, fpath: Optional[str] = None) -> None:
        self.console: TextIO = sys.stdout
        self.file: Optional[TextIO] = None
        if fpath is not None:
            mkdir_if_missing(osp.dirname(fpath))
            self.file = open(fpath, "w", buffering=1)

    def __del__(self) -> None:
        self.close_file()

    def write(self, msg: str) -> None:
        # The file first: a line seen on the console (or a scheduler's log) is already in log.txt.
        if self.file is not None:
            try:
                self.file.write(msg)
            except OSError as e:
                self._lose_file(e)
        self.console.write(msg)
        if "\n" in msg:
            self.console.flush()

    def _lose_file(self, err: OSError) -> None:
        # A full disk must not turn every later print into a crash: the console goes on alone.
        lost, self.file = self.file, None
        name = getattr(lost, "name", "log.txt")
        try:
            lost.close()
        except OSError:
            pass
        self.console.write(f"\nCannot write the log file {name} any more ({err.strerror}); "
                           "the console keeps the output\n")

    def write_file_only(self, msg: str) -> None:
        """Add ``msg`` to the log file without echoing it on the console."""
        if self.file is not None:
            try:
                self.file.write(msg)
                self.file.flush()
            except OSError as e:
                self._lose_file(e)

    def flush(self) -> None:
        self.console.flush()
        if self.file is not None:
            try:
                self.file.flush()
                os.fsync(self.file.fileno())
            except OSError as e:
                self._lose_file(e)

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


def log_error(message: str) -> None:
    """Report ``message`` on stderr and, when stdout is tee'd, in the log file too (once on screen)."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
    current = sys.stdout
    if isinstance(current, Logger):
        current.write_file_only(message.rstrip("\n") + "\n")


def restore_stdout() -> None:
    """Undo ``setup_logger``: close the log file and restore the console."""
    current = sys.stdout
    while isinstance(current, Logger):
        current.flush()
        current.close_file()
        current = current.console
    sys.stdout = current
