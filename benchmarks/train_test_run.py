"""Peak memory and time of a whole `train.py` run (train, then the final test) at ViT-B/16 size.

    python benchmarks/train_test_run.py --trainer MMRL --classes 100 --shots 1
    python benchmarks/train_test_run.py --trainer MMRL --classes 2000 --per-class 3 --max-steps 8

It writes a randomly initialised CLIP with ViT-B/16 shapes to a weights file and a folder of
random 256x256 images (one sub-folder per class, read by the ImageFolder dataset), then runs
train.py as a user would with the method's base-to-novel config (MMRL/vit_b16.yaml: batch 4,
fp32 on CPU) on the base half of the classes for one epoch, and reports the run's peak resident
memory (data loading in the main process, NUM_WORKERS 0) and its time per training step.
It prints figures; it is not a test.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare(weights: str, folder: str, n_classes: int, per_class: int) -> None:
    """Write the random weights and the image folder. Run in its own process: a process that
    launches the measured run must not hold torch and a CLIP, since on Linux the run's peak
    resident size would include the launching process's image at the fork."""
    import numpy as np
    import torch

    from mmrl.demo.clip import VIT_B16_SPEC, build_random_clip
    from mmrl.demo.images import write_image

    if not os.path.isfile(weights):
        torch.save(build_random_clip(VIT_B16_SPEC).state_dict(), weights)
    if not os.path.isdir(folder):
        rng = np.random.default_rng(0)
        for c in range(n_classes):
            for i in range(per_class):
                write_image(os.path.join(folder, f"class_{c:03d}", f"{i}.jpg"),
                            rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))


# --max-steps: the training epoch stops after N batches (the final test still runs on the whole test
# split), so that a run at 1000 classes, whose one epoch is 250 steps of 4 images at 1 shot, measures
# its step time and peak memory in minutes. The engine's batches are wrapped; nothing else changes.
TRUNCATE = """import itertools
from mmrl.dassl.engine.trainer import TrainerX
_batches = TrainerX.readable_batches
def _first(self, loader):
    batches = _batches(self, loader)
    return itertools.islice(batches, {0}) if loader is self.train_loader_x else batches
TrainerX.readable_batches = _first
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainer", choices=["MMRL", "MMRLpp"], default="MMRL")
    p.add_argument("--classes", type=int, default=100, help="classes in the folder (the base half trains)")
    p.add_argument("--per-class", type=int, default=4, help="images per class (50%% train, 20%% val, rest test)")
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop the training epoch after this many steps (0: the whole epoch); the test is whole")
    p.add_argument("--work-dir", default="", help="where to write the weights and images (default: a temp dir)")
    p.add_argument("--prepare", nargs=2, metavar=("WEIGHTS", "FOLDER"), help=argparse.SUPPRESS)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="extra KEY VALUE config overrides")
    args = p.parse_args(argv)
    if args.prepare:
        prepare(*args.prepare, args.classes, args.per_class)
        return 0

    work = args.work_dir or tempfile.mkdtemp(prefix="mmrl-bench-")
    os.makedirs(work, exist_ok=True)
    weights = os.path.join(work, "vit-b16-random.pt")
    data = os.path.join(work, "data")
    subprocess.run([sys.executable, __file__, "--classes", str(args.classes), "--per-class", str(args.per_class),
                    "--prepare", weights, os.path.join(data, "folder")], check=True)
    out = os.path.join(work, f"run-{args.trainer}-{int(time.time())}")

    # The run reports its own peak (a parent's RUSAGE_CHILDREN would also count the forked,
    # pre-exec image of this process, which holds torch and a CLIP).
    runner = ("import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
              + (TRUNCATE.format(args.max_steps) if args.max_steps else "") +
              "try:\n    runpy.run_path('train.py', run_name='__main__')\n"
              "finally:\n    print(f'PEAK_RSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}')")
    cmd = [sys.executable, "-c", runner, "train.py", "--root", data, "--seed", "1", "--trainer", args.trainer,
           "--dataset-config-file", "configs/datasets/image_folder.yaml",
           "--config-file", f"configs/trainers/{args.trainer}/vit_b16.yaml", "--output-dir", out,
           "MODEL.BACKBONE.PATH", weights, "DATASET.FOLDER.DIR", "folder",
           "DATASET.NUM_SHOTS", str(args.shots), "DATASET.SUBSAMPLE_CLASSES", "base",
           "OPTIM.MAX_EPOCH", "1", "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "1", *args.opts]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return proc.returncode
    peak_gb = int(re.findall(r"^PEAK_RSS_KB (\d+)$", proc.stdout, re.M)[-1]) / 1024 ** 2
    batch_times = [float(t) for t in re.findall(r"batch \[\d+/\d+\] time ([\d.]+)", proc.stdout)]
    accuracy = re.findall(r"^\* accuracy: ([\d.]+)%", proc.stdout, re.M)
    steady = batch_times[1:] or batch_times  # the first step also fills the caches

    print(f"trainer            {args.trainer} (vit_b16.yaml, random ViT-B/16 weights, {args.classes // 2} base classes)")
    print(f"training steps     {len(batch_times)}, {sum(steady) / len(steady):.3f} s per step after the first")
    print(f"final test         {accuracy[-1] if accuracy else '?'}% (random weights: meaningless)")
    print(f"whole run          {wall:.1f} s (start-up, one epoch, final test)")
    print(f"peak memory        {peak_gb:.2f} GB (resident, train.py process)")
    print(f"output             {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
