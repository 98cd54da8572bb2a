"""Speed and memory of MMRL / MMRL++ training and evaluation at real CLIP shapes, with random weights.

    python benchmarks/benchmark.py --trainer MMRL --device cpu --batch-size 4 --classes 50
    python benchmarks/benchmark.py --trainer MMRLpp --device cuda --prec amp --batch-size 32 --classes 500
    python benchmarks/benchmark.py --device cpu --prec bf16 --spec mini --compile

It builds a randomly initialised CLIP with ViT-B/16 shapes (or the miniature one with --spec mini), the
method's learner with the reference configuration, and times full training steps (forward, loss,
backward, AdamW step) and evaluation on random images. It prints figures; it is not a test. Peak memory is
the process's peak resident set size on CPU, and the peak allocated CUDA memory on a GPU. Precisions are
the trainers' (PREC): fp16 and amp run on CPU as they would on CUDA. ``--row`` prints one tab-separated
line instead (benchmarks/device_check.sh assembles its table from them). ``--compile`` runs the towers'
per-block functions through torch.compile (an evaluation: the trainers have no such option).
"""
import argparse
import resource
import sys
import time

import torch

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.engine.trainer import AUTOCAST_DTYPES
from mmrl.dassl.optim import build_optimizer
from mmrl.demo.clip import MINI_SPEC, VIT_B16_SPEC, build_random_clip
from mmrl.model.clip_loader import convert_weights
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model import towers
from mmrl.model.representation import RepArch

SPECS = {"vit-b16": VIT_B16_SPEC, "mini": MINI_SPEC}


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024 ** 3
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainer", choices=["MMRL", "MMRLpp"], default="MMRL")
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
                        "(auto: on CPU only, the trainers' default)")
    p.add_argument("--compile", action="store_true", help="torch.compile the towers' per-block functions")
    p.add_argument("--row", action="store_true", help="print one tab-separated line of figures")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    recompute = args.recompute == "on" or (args.recompute == "auto" and device.type == "cpu")
    if args.compile and recompute:
        # Compiled blocks recomputed by torch.utils.checkpoint fail its metadata check (the
        # recomputation meets another compiled graph).
        p.error("--compile needs --recompute off")
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

    # The reference configuration: K = 5 tokens in blocks 6..12, d_r = 512 (MMRL++: ranks 64 and 4).
    arch = RepArch.from_clip(clip_model, args.trainer, 5, (6, 7, 8, 9, 10, 11, 12), 512,
                             proj_lora_dim=64, res_lora_dim=4)
    # Class names of 1 to 6 words, as in the benchmark datasets (e.g. UCF101's "Apply Eye Makeup",
    # Aircraft's "Cessna 525 Citation Jet"): the text tower's cost follows the longest prompt.
    words = ["red", "spotted", "mountain", "grey", "long", "tailed", "house", "river", "jet", "night"]
    prompts = [f"a photo of a {' '.join(words[(i + j) % len(words)] for j in range(1 + i % 6))}."
               for i in range(args.classes)]
    kwargs = {"alpha": 0.7, "recompute": recompute}
    if args.trainer == "MMRLpp":
        kwargs["beta"] = 0.9
    model = RepresentationCLIP(clip_model, prompts, arch, **kwargs).to(device)
    cfg.OPTIM.NAME, cfg.OPTIM.LR = "adamw", 0.001
    optim = build_optimizer(model.learner, cfg.OPTIM)
    trainable = sum(p.numel() for p in model.learner.parameters() if p.requires_grad)

    scaler = torch.amp.GradScaler(device.type) if args.prec == "amp" else None
    autocast_dtype = AUTOCAST_DTYPES.get(args.prec)

    def autocast():
        return torch.autocast(device.type, dtype=autocast_dtype or torch.float16, enabled=autocast_dtype is not None)

    res = spec["image_resolution"]
    dtype = torch.float16 if args.prec == "fp16" else torch.float32
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def train_step() -> None:
        images = torch.randn(args.batch_size, 3, res, res, device=device, dtype=dtype)
        labels = torch.randint(0, args.classes, (args.batch_size,), device=device)
        with autocast():
            loss = model.forward_train(images, labels, reg_weight=1.0).loss
        optim.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optim)
            scaler.update()
        else:
            loss.backward()
            optim.step()

    model.learner.train()
    start = time.perf_counter()
    train_step()  # warm-up: allocator, kernels, the frozen text caches (and compilation)
    sync(device)
    warmup_time = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    sync(device)
    step_time = (time.perf_counter() - start) / args.steps

    model.learner.eval()
    with torch.no_grad(), autocast():
        sync(device)
        start = time.perf_counter()
        text_features = model.text_features()
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
          f"{', recompute' if recompute else ''}{', compiled' if args.compile else ''})")
    print(f"threads            {torch.get_num_threads()}")
    print(f"classes / batch    {args.classes} / {args.batch_size} "
          f"(longest prompt {int(model.eot_index.max()) + 1} tokens)")
    print(f"trainable params   {trainable:,}")
    print(f"first step         {warmup_time:.3f} s  (warm-up{', compilation included' if args.compile else ''})")
    print(f"train step         {step_time:.3f} s  ({args.batch_size / step_time:.2f} images/s)")
    print(f"evaluation         {args.eval_images / eval_time:.2f} images/s "
          f"({args.eval_images} images, text features included)")
    print(f"peak memory        {peak_memory_gb(device):.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
