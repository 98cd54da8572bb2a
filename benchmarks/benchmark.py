"""Speed and memory of MMRL / MMRL++ training and evaluation at real CLIP shapes, with random weights.

    python benchmarks/benchmark.py --trainer MMRL --device cpu --batch-size 4 --classes 50
    python benchmarks/benchmark.py --trainer MMRLpp --device cuda --prec amp --batch-size 32 --classes 500
    python benchmarks/benchmark.py --trainer CoCoOp --device cpu --batch-size 1 --classes 50
    python benchmarks/benchmark.py --device cpu --prec bf16 --spec mini --compile
    python benchmarks/benchmark.py --distributed --world-sizes 1 2 --class-counts 50 1000 --batch-size 4

It builds a randomly initialised CLIP with ViT-B/16 shapes (or the miniature one with --spec mini), the
method's learner with the reference configuration (CoOp: 16 random context vectors, CoCoOp: "a photo of
a"), and times full training steps (forward, loss, backward, optimizer step) and evaluation on random images. It prints figures; it is not a test. Peak memory is
the process's peak resident set size on CPU, and the peak allocated CUDA memory on a GPU. Precisions are
the trainers' (PREC): fp16 and amp run on CPU as they would on CUDA. ``--row`` prints one tab-separated
line instead (benchmarks/device_check.sh assembles its table from them). ``--compile`` runs the towers'
per-block functions through torch.compile (an evaluation: the trainers have no such option).

``--distributed`` launches the same training step under torchrun for each world size and class
count (Gloo on CPU, NCCL with ``--device cuda``; one GPU per rank): the global batch is split over the
ranks and the class prompts sharded, as train.py does. It prints each rank's step time and peak
memory, and the scaling efficiency: speed-up over one process (same global batch) / world size.
"""
import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

import torch

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.engine.trainer import AUTOCAST_DTYPES
from mmrl.dassl.optim import build_optimizer
from mmrl.dassl.utils import distributed as dist
from mmrl.demo.clip import MINI_SPEC, VIT_B16_SPEC, build_random_clip
from mmrl.model.clip_loader import convert_weights
from mmrl.model.coop import PromptCLIP
from mmrl.model.maple import MaPLeCLIP
from mmrl.model.memory import choose_recompute, keep_freed_memory
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model import towers
from mmrl.model.promptsrc import PromptSRCCLIP
from mmrl.model.representation import RepArch

SPECS = {"vit-b16": VIT_B16_SPEC, "mini": MINI_SPEC}
def _coop(clip_model, classnames, recompute):
    # CoOp's few-shot configuration: 16 random context vectors.
    model = PromptCLIP(clip_model, classnames, 16, "")
    return model, lambda images, labels, share: model.forward_train(images, labels, share=share)[1], 0.002


def _cocoop(clip_model, classnames, recompute):
    # CoCoOp's only configuration: 4 context vectors from "a photo of a" and the meta-net.
    model = PromptCLIP(clip_model, classnames, 4, "a photo of a", meta_net=True)
    return model, lambda images, labels, share: model.forward_train(images, labels, share=share)[1], 0.002


def _maple(clip_model, classnames, recompute):
    # The published base-to-novel configuration: 2 context tokens from "a photo of a", depth 9.
    model = MaPLeCLIP(clip_model, classnames, 2, "a photo of a", 9, recompute=recompute)
    return model, lambda images, labels, share: share * model.forward_train(images, labels)[0], 0.0035


def _promptsrc(clip_model, classnames, recompute):
    # The published base-to-novel configuration: 4 + 4 tokens, depth 9 in both towers, 60 templates.
    model = PromptSRCCLIP(clip_model, classnames, 4, 4, "a photo of a", 9, 9, 25, 10, recompute=recompute)
    return model, lambda images, labels, share: model.forward_train(images, labels, share)[0]["loss"], 0.0025


# Prompt learners (SGD, as published): trainer -> (model, loss(images, labels, batch share), LR).
PROMPT_LEARNERS = {"CoOp": _coop, "CoCoOp": _cocoop, "MaPLe": _maple, "PromptSRC": _promptsrc}


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024 ** 3
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainer", choices=["MMRL", "MMRLpp", *PROMPT_LEARNERS], default="MMRL")
    p.add_argument("--spec", choices=sorted(SPECS), default="vit-b16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--prec", choices=["fp32", "fp16", "amp", "bf16"], default="fp32",
                   help="as TRAINER.<NAME>.PREC; all four run on CPU too")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--classes", type=int, default=50, help="number of training classes")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up step)")
    p.add_argument("--eval-images", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--recompute", choices=["auto", "on", "off"], default="auto",
                   help="recompute the token-carrying blocks in backward, as TRAINER.<NAME>.RECOMPUTE "
                        "(auto, the trainers' default: off when the step's estimated activations fit "
                        "--memory-budget-gb, mmrl.model.memory)")
    p.add_argument("--memory-budget-gb", type=float, default=0.0,
                   help="as TRAINER.<NAME>.MEMORY_BUDGET_GB (0: the default budget, mmrl.model.memory)")
    p.add_argument("--compile", action="store_true", help="torch.compile the towers' per-block functions")
    p.add_argument("--row", action="store_true", help="print one tab-separated line of figures")
    p.add_argument("--distributed", action="store_true",
                   help="time the step under torchrun for each of --world-sizes and --class-counts")
    p.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--class-counts", type=int, nargs="+", default=[50, 1000])
    p.add_argument("--worker-out", default="", help=argparse.SUPPRESS)  # a rank of --distributed
    args = p.parse_args(argv)
    if args.compile and args.recompute != "off":
        # Compiled blocks recomputed by torch.utils.checkpoint fail its metadata check (the
        # recomputation meets another compiled graph).
        p.error("--compile needs --recompute off")
    if args.distributed and args.trainer in PROMPT_LEARNERS:
        p.error("--distributed times MMRL / MMRLpp (the class prompts sharded over the ranks)")
    if args.compile and args.distributed:
        p.error("--compile times one process; drop it with --distributed")
    return args


def build(args: argparse.Namespace, device: torch.device, sharding=None):
    """The frozen random CLIP, the learner on it (its classes sharded by ``sharding``), the optimizer."""
    if args.compile:
        # The loops look the block functions up at call time, so this swaps them for compiled ones.
        towers.run_block = torch.compile(towers.run_block, dynamic=False)
        towers.run_shared_prefix_block = torch.compile(towers.run_shared_prefix_block, dynamic=False)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = get_cfg_default()
    spec = SPECS[args.spec]
    clip_model = build_random_clip(spec)
    for param in clip_model.parameters():
        param.requires_grad_(False)
    clip_model.eval()
    if args.prec == "fp16":
        convert_weights(clip_model)  # as load_clip(fp16=True): the layer norms stay fp32
    clip_model.to(device)

    # Class names of 1 to 6 words, as in the benchmark datasets (e.g. UCF101's "Apply Eye Makeup",
    # Aircraft's "Cessna 525 Citation Jet"): the text tower's cost follows the longest prompt.
    words = ["red", "spotted", "mountain", "grey", "long", "tailed", "house", "river", "jet", "night"]
    names = [" ".join(words[(i + j) % len(words)] for j in range(1 + i % 6)) for i in range(args.classes)]
    if args.trainer in PROMPT_LEARNERS:
        model, args.loss, cfg.OPTIM.LR = PROMPT_LEARNERS[args.trainer](clip_model, names, args.recompute == "on")
        args.recompute_why = "on: the image tower" if args.recompute == "on" else "off"
        model.to(device)
        if hasattr(model, "trainable"):  # MaPLe, PromptSRC: the name used below
            model.learner = model.trainable
        cfg.OPTIM.NAME = "sgd"
        return model, build_optimizer(model.learner, cfg.OPTIM), spec["image_resolution"]
    prompts = [f"a photo of a {name}." for name in names]
    # The reference configuration: K = 5 tokens in blocks 6..12, d_r = 512 (MMRL++: ranks 64 and 4).
    arch = RepArch.from_clip(clip_model, args.trainer, 5, (6, 7, 8, 9, 10, 11, 12), 512,
                             proj_lora_dim=64, res_lora_dim=4)
    kwargs = {"alpha": 0.7}
    if args.trainer == "MMRLpp":
        kwargs["beta"] = 0.9
    model = RepresentationCLIP(clip_model, prompts, arch, sharding=sharding, **kwargs).to(device)
    batch = dist.check_global_batch(args.batch_size, "--batch-size")
    model.recompute, args.recompute_why = choose_recompute(model, args.recompute, batch, args.prec, device,
                                                           args.memory_budget_gb)
    if device.type == "cpu":
        keep_freed_memory()  # as the trainers do on CPU
    cfg.OPTIM.NAME, cfg.OPTIM.LR = "adamw", 0.001
    optim = build_optimizer(model.learner, cfg.OPTIM)
    return model, optim, spec["image_resolution"]


def autocast(args: argparse.Namespace, device: torch.device):
    dtype = AUTOCAST_DTYPES.get(args.prec)
    return torch.autocast(device.type, dtype=dtype or torch.float16, enabled=dtype is not None)


def step_function(args: argparse.Namespace, device: torch.device, model, optim, res: int, batch: int):
    """One training step on ``batch`` random images: forward, loss, backward, (gradient sum over
    ranks,) optimizer step. ``batch`` is this rank's share of ``args.batch_size``."""
    scaler = torch.amp.GradScaler(device.type) if args.prec == "amp" else None
    dtype = torch.float16 if args.prec == "fp16" else torch.float32
    share = batch / args.batch_size

    def train_step() -> None:
        images = torch.randn(batch, 3, res, res, device=device, dtype=dtype)
        labels = torch.randint(0, args.classes, (batch,), device=device)
        with autocast(args, device):
            if args.trainer in PROMPT_LEARNERS:
                loss = args.loss(images, labels, share)
            else:
                loss = model.forward_train(images, labels, reg_weight=1.0, batch_share=share).loss
        optim.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            dist.all_reduce_gradients(model.learner.parameters())
            scaler.step(optim)
            scaler.update()
        else:
            loss.backward()
            dist.all_reduce_gradients(model.learner.parameters())
            optim.step()

    return train_step


def timed(train_step, steps: int, device: torch.device):
    """(seconds of the warm-up step, seconds per step over ``steps`` steps after it). The warm-up
    pays for the allocator, kernels, the frozen text caches (and compilation)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    train_step()
    sync(device)
    dist.barrier()
    warmup_time = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    sync(device)
    dist.barrier()
    return warmup_time, (time.perf_counter() - start) / steps


def worker(args: argparse.Namespace) -> int:
    """One rank of --distributed: time the sharded step and write this rank's figures."""
    cuda = torch.device(args.device).type == "cuda"
    dist.init_from_env(use_cuda=cuda)
    try:
        device = torch.device("cuda", dist.local_rank()) if cuda else torch.device("cpu")
        if args.threads:
            torch.set_num_threads(args.threads)
        sharding = dist.RowSharding("classes")
        model, optim, res = build(args, device, sharding)
        batch = dist.check_global_batch(args.batch_size, "--batch-size")
        model.learner.train()
        _, step_time = timed(step_function(args, device, model, optim, res, batch), args.steps, device)
        figures = {"rank": dist.rank(), "world": dist.world_size(), "classes": args.classes,
                   "text_rows": model.w_zs.shape[0], "batch": batch, "step_s": step_time,
                   "peak_gb": peak_memory_gb(device), "threads": torch.get_num_threads(),
                   "backend": torch.distributed.get_backend()}
        with open(f"{args.worker_out}.rank{dist.rank()}", "w") as f:
            json.dump(figures, f)
    except BaseException:
        dist.shutdown(failed=True)
        raise
    dist.shutdown()
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distributed(args: argparse.Namespace) -> int:
    """Launch each (classes, world size) under torchrun and print every rank's figures."""
    forwarded = ["--trainer", args.trainer, "--spec", args.spec, "--device", args.device, "--prec", args.prec,
                 "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--recompute", args.recompute,
                 "--memory-budget-gb", str(args.memory_budget_gb)]
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for classes in args.class_counts:
            for world in args.world_sizes:
                out = os.path.join(tmp, f"c{classes}-w{world}")
                # A rank stands for one device: on CPU each gets the same threads (1 unless --threads),
                # so that world size 2 uses twice the cores of world size 1, as 2 GPUs do one GPU.
                threads = args.threads or 1
                cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world),
                       "--master_addr", "127.0.0.1", "--master_port", str(free_port()), os.path.abspath(__file__),
                       *forwarded, "--classes", str(classes), "--threads", str(threads), "--worker-out", out]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                    return proc.returncode
                rows += [json.load(open(f"{out}.rank{r}")) for r in range(world)]
    print(f"trainer {args.trainer} ({args.spec}, random weights, {args.prec}, {args.device}), global batch "
          f"{args.batch_size}, {args.steps} timed steps; {cores} CPU cores on this machine")
    print(f"{'classes':>7} {'world':>5} {'rank':>4} {'backend':>7} {'threads':>7} {'batch':>5} {'text rows':>9} "
          f"{'step (s)':>9} {'peak (GB)':>9} {'speed-up':>8} {'efficiency':>10}")
    for row in rows:
        same = [r for r in rows if r["classes"] == row["classes"]]
        one = [r["step_s"] for r in same if r["world"] == 1]
        slowest = max(r["step_s"] for r in same if r["world"] == row["world"])
        speedup = one[0] / slowest if one else float("nan")
        print(f"{row['classes']:>7} {row['world']:>5} {row['rank']:>4} {row['backend']:>7} {row['threads']:>7} "
              f"{row['batch']:>5} {row['text_rows']:>9} {row['step_s']:>9.3f} {row['peak_gb']:>9.2f} "
              f"{speedup:>8.2f} {speedup / row['world']:>9.0%}")
    print("speed-up: one process's step time / the slowest rank's, at the same global batch; "
          "efficiency: speed-up / world size")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker_out:
        return worker(args)
    if args.distributed:
        return distributed(args)
    device = torch.device(args.device)
    model, optim, res = build(args, device)
    trainable = sum(p.numel() for p in model.learner.parameters() if p.requires_grad)
    dtype = torch.float16 if args.prec == "fp16" else torch.float32
    train_step = step_function(args, device, model, optim, res, args.batch_size)

    model.learner.train()
    warmup_time, step_time = timed(train_step, args.steps, device)

    model.learner.eval()
    with torch.no_grad(), autocast(args, device):
        sync(device)
        start = time.perf_counter()
        # CoCoOp's text features are each image's own: computed with its logits.
        text_features = None if getattr(model, "conditional", False) else model.text_features()
        done = 0
        while done < args.eval_images:
            n = min(args.eval_batch_size, args.eval_images - done)
            images = torch.randn(n, 3, res, res, device=device, dtype=dtype)
            model.logits(images, text_features)
            done += n
        sync(device)
        eval_time = time.perf_counter() - start

    if args.row:
        print("\t".join(str(v) for v in (
            args.trainer, args.spec, args.prec, args.batch_size, args.classes, f"{step_time:.4f}",
            f"{args.batch_size / step_time:.1f}", f"{args.eval_images / eval_time:.1f}",
            f"{peak_memory_gb(device):.2f}")))
        return 0
    print(f"trainer            {args.trainer} ({args.spec}, random weights, {args.prec}, {device}"
          f"{', compiled' if args.compile else ''})")
    print(f"recompute          {'on' if getattr(model, 'recompute', False) else 'off'} ({args.recompute_why})")
    print(f"threads            {torch.get_num_threads()}")
    print(f"classes / batch    {args.classes} / {args.batch_size} "
          f"(longest prompt {int(getattr(model, 'text', model).eot_index.max()) + 1} tokens)")
    print(f"trainable params   {trainable:,}")
    print(f"first step         {warmup_time:.3f} s  (warm-up{', compilation included' if args.compile else ''})")
    print(f"train step         {step_time:.3f} s  ({args.batch_size / step_time:.2f} images/s)")
    print(f"evaluation         {args.eval_images / eval_time:.2f} images/s "
          f"({args.eval_images} images, text features included)")
    print(f"peak memory        {peak_memory_gb(device):.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
