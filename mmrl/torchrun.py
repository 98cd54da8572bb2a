"""torchrun as the sweeps run it: ``python -m mmrl.torchrun ARGS`` takes torchrun's own arguments.

The processes are started, watched and stopped by torch's elastic launcher exactly as by
``torchrun``; only its end differs. When a process fails, torchrun raises its ChildFailedError
out of ``main`` and Python prints the agent's traceback and failure summary after the ranks' own
error lines, so a job's log ends with a traceback that is not where the error is. Here the
failure ends in one line naming the first failed rank and its exit code, the exit status is that
rank's (128 + N for a rank killed by signal N), and a signal to the agent itself (the launchers'
SIGTERM) exits with 128 + N, without a traceback. ``MMRL_DEBUG=1`` shows torchrun's traceback.
"""
import signal
import sys
from typing import Optional, Sequence

from mmrl.cli import DEBUG_HINT, debug


def _status(code: int) -> int:
    return 128 - code if code < 0 else code


def main(argv: Optional[Sequence[str]] = None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        torchrun_main(args)
    except ChildFailedError as err:
        if debug():
            raise
        rank, failure = err.get_first_failure()
        code = failure.exitcode
        how = f"was killed by {failure.signal_name()}" if code < 0 else f"exited with code {code}"
        print(f"Error: torchrun: rank {rank} {how}; its own error is in its lines above. {DEBUG_HINT}",
              file=sys.stderr, flush=True)
        return _status(code) or 1
    except SignalException as err:
        if debug():
            raise
        number = int(err.sigval)
        print(f"torchrun: stopped by {signal.Signals(number).name}", file=sys.stderr, flush=True)
        return 128 + number
    return 0


if __name__ == "__main__":
    sys.exit(main())
