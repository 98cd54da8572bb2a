"""train.py's main() run as usual (also under torchrun), with what the distributed tests need to see.

    python tests/train_harness.py RECORD.json -- <train.py arguments> [--then <arguments of a second run>]

- Every training step's logged loss (full precision, not the log's four decimals) is recorded, and
  rank 0 writes {"losses": [...], "rc": [...]} to RECORD.json (outside the run's output folder).
- ``--then`` starts a second main() in the same processes once the first has returned (e.g. the
  evaluation on the new classes after training on the base ones), saving a second launch.
- HARNESS_FAIL="RANK:EPOCH:BATCH" makes that rank raise when it reaches that batch (0-based epoch
  and batch): a crash in the middle of a run.
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
    codes = []
    for argv in runs:
        codes.append(train.main(argv))
        if codes[-1] != 0:
            break
    # The process group is gone by now; torchrun's RANK says which process this was.
    if os.environ.get("RANK", "0") == "0":
        with open(record, "w") as f:
            json.dump({"losses": LOSSES, "rc": codes}, f)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
