"""The error discipline every entry point shares (train.py, python -m mmrl.*, parse_test_res.py).

An expected error (a path, a key, a value, a file's content) ends the command with one line on
stderr that names the thing and what to do, and a non-zero exit; ``MMRL_DEBUG=1`` prints the
traceback behind it. Anything else is a bug and keeps its traceback.
"""
import os
import sys
import tempfile
import traceback
from typing import Callable, Optional, Sequence

DEBUG_HINT = "(set MMRL_DEBUG=1 to see the traceback)"


class UserError(Exception):
    """An expected failure whose message already says what is wrong and what to do."""


# Bad input or environment for tools that do not load torch (the result parser, the launchers).
BASIC_ERRORS = (OSError, ValueError, KeyError, UserError)


def user_errors() -> tuple:
    """The exception types that are bad input or environment, not bugs."""
    # Imported here: the checkpoint and CLIP modules import torch, which a tool such as the
    # result parser does not otherwise need to start.
    from mmrl.dassl.utils.torchtools import CheckpointError
    from mmrl.model.clip_loader import CLIPWeightsUnavailable

    return BASIC_ERRORS + (CheckpointError, CLIPWeightsUnavailable)


def one_line(err: BaseException) -> str:
    """The error's message; for one re-raised from a data-loader worker, only the worker's own
    last line (torch embeds the worker's whole traceback in the message)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if "Original Traceback" in text:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return f"{lines[0]} {lines[-1].strip()}"
    return text


def debug() -> bool:
    return bool(os.environ.get("MMRL_DEBUG"))


def report(err: BaseException, prefix: str = "", kind: str = "Error") -> str:
    """The one line (plus the debug hint) that ends a command on ``err``; prints the traceback
    first under MMRL_DEBUG. ``kind`` names the error where the tool says more than "Error"
    (train.py: "Configuration error")."""
    if debug():
        traceback.print_exc()
    return f"{prefix}{kind}: {one_line(err)}\n{DEBUG_HINT}"


def run_main(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None,
             errors: Optional[tuple] = None, error_code: int = 1) -> int:
    """Run a tool's ``main(argv)`` under the shared discipline and return its exit code:
    ``error_code`` for an expected error (one line on stderr; tools whose 1 means "partly done"
    use 2), 130 on Ctrl-C, main's own code otherwise."""
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted (Ctrl-C)\n")
        return 130
    except (errors or user_errors()) as err:
        sys.stderr.write(report(err) + "\n")
        return error_code


def check_output_file(path: str, flag: str, create_folder: bool = True) -> str:
    """Make sure ``path`` can be written, before the work whose result it will hold; returns it.

    Its folder is created when missing (``create_folder``) and must take a new file: tried for
    real with a temporary file, since permission bits say nothing for root or a read-only mount.
    """
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a folder: give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise UserError(f"{flag} {path}: {folder} is a file, not a folder; give another path")
        if not create_folder:
            raise UserError(f"{flag} {path}: the folder {folder} does not exist; create it or give another path")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise UserError(f"{flag} {path}: cannot create the folder {folder} ({err.strerror or err}); "
                            "give another path") from err
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
        if os.path.exists(path):
            with open(path, "a", encoding="utf-8"):
                pass
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write into {folder} ({err.strerror or err}); "
                        "give a path in a writable folder") from err
    return path
