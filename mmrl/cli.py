"""The error discipline every entry point shares (train.py, python -m mmrl.*, parse_test_res.py).

An expected error (a path, a key, a value, a file's content) ends the command with one line on
stderr that names the thing and what to do, and a non-zero exit; ``MMRL_DEBUG=1`` prints the
traceback behind it. Anything else is a bug and keeps its traceback.
"""
import os
import sys
import traceback
from typing import Callable, Optional, Sequence

DEBUG_HINT = "(set MMRL_DEBUG=1 to see the traceback)"


class UserError(Exception):
    """An expected failure whose message already says what is wrong and what to do."""


def user_errors() -> tuple:
    """The exception types that are bad input or environment, not bugs."""
    # Imported here: the checkpoint and CLIP modules import torch, which a tool such as the
    # result parser does not otherwise need to start.
    from mmrl.dassl.utils.torchtools import CheckpointError
    from mmrl.model.clip_loader import CLIPWeightsUnavailable

    return (OSError, ValueError, KeyError, UserError, CheckpointError, CLIPWeightsUnavailable)


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


def report(err: BaseException, prefix: str = "") -> str:
    """The one line (plus the debug hint) that ends a command on ``err``; prints the traceback
    first under MMRL_DEBUG."""
    if debug():
        traceback.print_exc()
    return f"{prefix}Error: {one_line(err)}\n{DEBUG_HINT}"


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None,
             errors: Optional[tuple] = None) -> int:
    """Run a tool's ``main(argv)`` under the shared discipline and return its exit code:
    1 for an expected error (one line on stderr), 130 on Ctrl-C, main's own code otherwise."""
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted (Ctrl-C)\n")
        return 130
    except (errors or user_errors()) as err:
        sys.stderr.write(report(err) + "\n")
        return 1
