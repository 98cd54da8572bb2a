"""train.py's main() run as usual (also under torchrun), with what the distributed tests need to see.

    python tests/train_harness.py RECORD.json -- <train.py arguments> [--then <arguments of a second run>]

- Every training step's logged loss (full precision, not the log's four decimals) is recorded, and
  each process writes {"losses": [...], "rc": [...]} (rc: main()'s return code per run) to
  RECORD.json (rank 0) or RECORD.json.rank<R> (outside the runs' output folders). The harness
  exits 0 once every main() has returned, whatever they returned (so that torchrun does not stop
  a rank that is still running); an exception escaping main() exits non-zero.
- ``--then`` starts another main() in the same processes once the previous one has returned (e.g.
  the evaluation on the new classes after training on the base ones), saving a launch. The runs
  share one process group: it is shut down after the last.
- HARNESS_FAIL="RANK:EPOCH:BATCH" makes that rank raise when it reaches that batch (0-based epoch
  and batch): a crash in the middle of a run.
- HARNESS_EXIT_RC=1 makes the harness exit 1 when a main() returned non-zero, as train.py does: for
  a launch of one process per node, where a torchrun agent whose process exits 0 waits up to 300 s
  at torchrun's exit barrier for the agents of the other nodes, which a failed node never reaches.
"""
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.chdir(REPO)

import train  # noqa: E402
from mmrl.dassl.utils import distributed as dist  # noqa: E402
from trainers.mmrl import MMRL  # noqa: E402

LOSSES = []
_forward_backward = MMRL.forward_backward


def _recording_forward_backward(self, batch):
    fail = os.environ.get("HARNESS_FAIL")
    if fail and tuple(int(x) for x in fail.split(":")) == (dist.rank(), self.epoch, self.batch_idx):
        raise RuntimeError(f"injected failure on rank {dist.rank()} at epoch {self.epoch + 1}")
    summary = _forward_backward(self, batch)
    LOSSES.append(summary["loss"])
    return summary


MMRL.forward_backward = _recording_forward_backward


def main() -> int:
    record, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: train_harness.py RECORD.json -- ARGS [--then ARGS]"
    runs = [[]]
    for arg in rest:
        if arg == "--then":
            runs.append([])
        else:
            runs[-1].append(arg)
    # A process group is not re-created within one torchrun launch (a second rendezvous on the agent's
    # store can meet the first one's keys), so only the last run leaves it.
    shutdown = dist.shutdown
    dist.shutdown = lambda failed=False: None
    codes = [train.main(argv) for argv in runs[:-1]]
    dist.shutdown = shutdown
    codes.append(train.main(runs[-1]))
    # The process group is gone by now; torchrun's RANK says which process this was.
    rank = os.environ.get("RANK", "0")
    with open(record if rank == "0" else f"{record}.rank{rank}", "w") as f:
        json.dump({"losses": LOSSES, "rc": codes}, f)
    return 1 if os.environ.get("HARNESS_EXIT_RC") == "1" and any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
