"""SIGTERM / SIGINT as a clean end of a run: one line saying where it stopped, exit code 128 + signal.

Schedulers (SLURM's preemption and time limit, ``kill``) send SIGTERM and a terminal sends SIGINT.
Both become a :class:`RunInterrupted` raised in the main thread wherever the run is, so the
checkpoint being written is abandoned (its temporary file removed, the previous one kept) and the
trainer can say which epoch and batch it was in. Rerunning the same command resumes.
"""
from __future__ import annotations

import contextlib
import signal
from typing import Any, Callable, Dict, Iterator, List, Optional

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(BaseException):
    """Raised by the handler of SIGTERM/SIGINT; a BaseException so ``except Exception`` lets it pass.

    ``where`` is filled in by the trainer ("at epoch 2, batch 3", ...), ``advice`` by what was
    running when the signal came.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.where = ""
        self.advice = "rerun the same command to resume"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def message(self) -> str:
        where = f" {self.where}" if self.where else ""
        return f"{self.signal_name}: interrupted{where}; {self.advice}"


def _raise(signum: int, frame: Any) -> None:
    # Once is enough: a second signal during the clean-up must not interrupt the clean-up itself.
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise RunInterrupted(signum)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`RunInterrupted`; the previous handlers
    come back afterwards."""
    previous: Dict[int, Optional[Callable[..., Any]]] = {}
    for sig in HANDLED_SIGNALS:
        previous[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def note_interrupts() -> List[int]:
    """From now on SIGTERM and SIGINT are noted in the returned list instead of raised: for a run
    that is already ending on an error, so that a launcher's signal (torchrun stops the other
    ranks once one has died) neither cuts its one line short nor hides it behind a traceback.
    :func:`interrupts_raise` puts the previous handlers back when its block ends."""
    noted: List[int] = []
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, lambda signum, frame: noted.append(signum))
    return noted
