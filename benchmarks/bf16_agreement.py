"""What bf16 costs in agreement with fp32: the same training run on the demo in both precisions.

    python benchmarks/bf16_agreement.py --trainer MMRL
    python benchmarks/bf16_agreement.py --trainer MMRLpp --seeds 1 2 3 --threads 1

It trains the method's demo config (configs/trainers/<NAME>/demo.yaml: the built-in synthetic dataset,
the miniature random CLIP, base classes) once with TRAINER.<NAME>.PREC fp32 and once with bf16, from
the same seed, for each of --seeds (so the same initial learner, few-shot subset, batches and augmentations), and prints
the loss of every epoch of both runs, the final test accuracy of each and the share of test images
they predict alike. The demo's CLIP is random, so the accuracies say nothing about real CLIP; the
agreement is what the figure is for. It prints figures; it is not a test.
"""
import argparse
import os
import sys
import tempfile
from typing import Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def run(trainer_name: str, prec: str, root: str, out: str, seed: int, epochs: int, shots: int) -> Dict[str, List]:
    """One training run and its final test: the losses of its steps, the test predictions and labels."""
    import torch

    import datasets  # noqa: F401  (registers the datasets)
    import trainers  # noqa: F401  (registers the trainers)
    from mmrl.config import build_parser, setup_cfg
    from mmrl.dassl.engine import build_trainer
    from mmrl.dassl.utils import set_random_seed

    argv = ["--root", root, "--seed", str(seed), "--trainer", trainer_name,
            "--dataset-config-file", os.path.join(REPO, "configs/datasets/demo.yaml"),
            "--config-file", os.path.join(REPO, f"configs/trainers/{trainer_name}/demo.yaml"),
            "--output-dir", out, "DATASET.NUM_SHOTS", str(shots), "DATASET.SUBSAMPLE_CLASSES", "base",
            "OPTIM.MAX_EPOCH", str(epochs), f"TRAINER.{trainer_name}.PREC", prec, "TRAIN.PRINT_FREQ", "1000"]
    cfg = setup_cfg(build_parser().parse_args(argv))
    set_random_seed(cfg.SEED)
    trainer = build_trainer(cfg)
    seen: Dict[str, List] = {"losses": [], "epochs": [], "predictions": [], "labels": []}
    step, infer, parse = trainer.forward_backward, trainer.model_inference, trainer.parse_batch_test

    def forward_backward(batch):
        summary = step(batch)
        seen["losses"].append(summary["loss"])
        seen["epochs"].append(trainer.epoch)
        return summary

    def model_inference(*args):
        logits = infer(*args)
        seen["predictions"].append(logits.argmax(dim=1).cpu())
        return logits

    def parse_batch_test(batch):
        image, label = parse(batch)
        seen["labels"].append(label.cpu())
        return image, label

    trainer.forward_backward, trainer.model_inference, trainer.parse_batch_test = (
        forward_backward, model_inference, parse_batch_test)
    trainer.train()  # ends with the final test, whose predictions are recorded
    seen["predictions"] = torch.cat(seen["predictions"]).tolist()
    seen["labels"] = torch.cat(seen["labels"]).tolist()
    return seen


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainer", choices=["MMRL", "MMRLpp"], default="MMRL")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=5, help="OPTIM.MAX_EPOCH (the demo config's: 5)")
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--root", default="", help="the demo's data root (default: a temp dir)")
    args = p.parse_args(argv)

    import contextlib
    import io

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = tempfile.mkdtemp(prefix="mmrl-bf16-")
    root = args.root or os.path.join(work, "data")
    print(f"trainer {args.trainer}, demo (miniature random CLIP, base classes), {args.shots} shots, "
          f"{args.epochs} epochs; CPU bf16 instructions: {cpu_bf16()}")
    totals = {"fp32": 0, "bf16": 0, "same": 0, "n": 0}
    for seed in args.seeds:
        runs = {}
        for prec in ("fp32", "bf16"):
            with contextlib.redirect_stdout(io.StringIO()):  # the runs' own logs
                runs[prec] = run(args.trainer, prec, root, os.path.join(work, f"{prec}-seed{seed}"), seed,
                                 args.epochs, args.shots)
        a, b = runs["fp32"], runs["bf16"]
        if a["labels"] != b["labels"]:
            raise SystemExit("the two runs tested different images; the comparison is void")
        print(f"\nseed {seed}: {len(a['losses'])} steps per run")
        print(f"{'epoch':>5} {'fp32 loss':>10} {'bf16 loss':>10} {'difference':>10}")
        for epoch in sorted(set(a["epochs"])):
            la = [x for x, e in zip(a["losses"], a["epochs"]) if e == epoch]
            lb = [x for x, e in zip(b["losses"], b["epochs"]) if e == epoch]
            ma, mb = sum(la) / len(la), sum(lb) / len(lb)
            print(f"{epoch + 1:>5} {ma:>10.4f} {mb:>10.4f} {mb - ma:>+10.4f}")
        gaps = [abs(x - y) for x, y in zip(a["losses"], b["losses"])]
        print(f"largest step-loss difference: {max(gaps):.4f} (step {gaps.index(max(gaps)) + 1})")
        n = len(a["labels"])
        right = {prec: sum(p == y for p, y in zip(r["predictions"], r["labels"])) for prec, r in runs.items()}
        same = sum(p == q for p, q in zip(a["predictions"], b["predictions"]))
        print(f"test accuracy: fp32 {right['fp32'] / n:.1%}, bf16 {right['bf16'] / n:.1%} ({n} images); "
              f"equal predictions: {same / n:.1%}")
        totals = {"fp32": totals["fp32"] + right["fp32"], "bf16": totals["bf16"] + right["bf16"],
                  "same": totals["same"] + same, "n": totals["n"] + n}
    n = totals["n"]
    print(f"\nall seeds ({n} test images): accuracy fp32 {totals['fp32'] / n:.1%}, bf16 {totals['bf16'] / n:.1%}; "
          f"equal predictions {totals['same'] / n:.1%} (the random CLIP's accuracies say nothing about real CLIP)")
    return 0


def cpu_bf16() -> str:
    from mmrl.dassl.engine.trainer import cpu_has_native_bf16

    return "yes (AVX-512-BF16 or AMX)" if cpu_has_native_bf16() else "no (bf16 is emulated: slower than fp32)"


if __name__ == "__main__":
    sys.exit(main())
