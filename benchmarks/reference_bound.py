"""Lower bounds on the reference implementation's step at class counts where it cannot be run here.

    python benchmarks/reference_bound.py --class-counts 50 1000

The reference's training step (its forward as tests/reference_forward.py writes it out: every class
prompt through all 12 text blocks at 77 + K positions, the image tower with the tokens, a second,
zero-shot image forward, the loss and its backward) is run on fake tensors (shapes only, nothing
computed) at ViT-B/16 shapes, batch 4, fp32, counting
- its FLOPs (FlopCounterMode, the same count as benchmarks/roofline.py's), and
- the bytes autograd saves for its backward (distinct storages, CLIP's weights excluded).
A step cannot take less than its FLOPs at this machine's fastest product rate (one 2048^3 fp32
product, measured here), nor peak below its saved activations plus one copy of CLIP's weights: these
are lower bounds on the reference, not measurements of it. It prints figures; it is not a test.

    python benchmarks/reference_bound.py --class-counts 50 1000 --measure 3

also runs that written-out step on real tensors (each class count in a process of its own, with a
second CLIP for the zero-shot branch as the reference keeps one, SGD on the learnable tensors) and
prints its time per step (the steps after the first) and the process's peak resident memory. That is
the reference's arithmetic as tests/reference_forward.py writes it, not the published code itself
(no data loader, no logging); at 50 classes compare it with a measured run of the published code.
"""
import argparse
import os
import resource
import subprocess
import sys
import time
import types

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mmrl.model.flops  # noqa: E402,F401  (counts CPU attention)
from mmrl.demo.clip import VIT_B16_SPEC, build_random_clip  # noqa: E402
from mmrl.model.clip_loader import tokenize  # noqa: E402
from roofline import square_rate  # noqa: E402
from tests import reference_forward as ref  # noqa: E402

LAYERS = (6, 7, 8, 9, 10, 11, 12)
K = 5
# The benchmark's class names (benchmarks/benchmark.py): 1 to 6 words.
WORDS = ["red", "spotted", "mountain", "grey", "long", "tailed", "house", "river", "jet", "night"]


def class_tokens(classes: int) -> torch.Tensor:
    prompts = [f"a photo of a {' '.join(WORDS[(i + j) % len(WORDS)] for j in range(1 + i % 6))}."
               for i in range(classes)]
    return tokenize(prompts)


def step_loss(clip_model, zs_clip, tokens, images, labels, text_tokens, visual_tokens, proj_rep):
    """The reference's training loss: alpha 0.7, lambda 1 (its default), logit scale 100."""
    w = F.normalize(ref.text_features(clip_model, tokens, LAYERS, text_tokens, K), dim=-1)
    f_c, f_r = ref.image_features(clip_model.visual, images, LAYERS, visual_tokens, K, proj_rep)
    with torch.no_grad():
        f_zs = F.normalize(zs_clip.encode_image(images), dim=-1)
    f_c, f_r = F.normalize(f_c, dim=-1), F.normalize(f_r, dim=-1)
    return (0.7 * F.cross_entropy(100 * f_c @ w.t(), labels) + 0.3 * F.cross_entropy(100 * f_r @ w.t(), labels)
            + 1 - F.cosine_similarity(f_c, f_zs).mean())


def learnable(spec, batch: int):
    res, dv, dt, d = spec["image_resolution"], spec["vision_width"], spec["transformer_width"], spec["embed_dim"]
    images = torch.randn(batch, 3, res, res)
    labels = torch.zeros(batch, dtype=torch.long)
    text_tokens = [torch.randn(K, dt, requires_grad=True) for _ in LAYERS]
    visual_tokens = [torch.randn(K, dv, requires_grad=True) for _ in LAYERS]
    proj_rep = torch.randn(dv, d, requires_grad=True)
    return images, labels, text_tokens, visual_tokens, proj_rep


def measure(classes: int, batch: int, steps: int) -> None:
    """Runs the written-out reference step ``steps`` times on real tensors; prints one line:
    classes, seconds per step after the first, peak resident GB of this process."""
    torch.manual_seed(0)
    clip_model = build_random_clip(VIT_B16_SPEC).eval().requires_grad_(False)
    zs_clip = build_random_clip(VIT_B16_SPEC).eval().requires_grad_(False)
    tokens = class_tokens(classes)
    images, labels, text_tokens, visual_tokens, proj_rep = learnable(VIT_B16_SPEC, batch)
    optim = torch.optim.SGD(text_tokens + visual_tokens + [proj_rep], lr=1e-3)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = step_loss(clip_model, zs_clip, tokens, images, labels, text_tokens, visual_tokens, proj_rep)
        optim.zero_grad()
        loss.backward()
        optim.step()
        times.append(time.perf_counter() - start)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux
    per_step = sum(times[1:]) / max(len(times) - 1, 1)
    print(f"MEASURED {classes} {per_step:.3f} {peak_gb:.2f} {' '.join(f'{t:.2f}' for t in times)}", flush=True)


def reference_step(clip_model, classes: int, batch: int):
    """(FLOPs, saved activation bytes) of the reference's training step, on fake tensors."""
    tokens = class_tokens(classes)
    weights = {(tuple(p.shape), p.dtype) for p in clip_model.parameters()}
    weights |= {(tuple(reversed(s)), d) for s, d in weights}
    saved = {}

    def pack(t):
        if (tuple(t.shape), t.dtype) not in weights:
            storage = t.untyped_storage()
            saved[storage._cdata] = storage.nbytes()
        return t

    # The reference copies each text block to set its mask; here the block itself takes the mask (on
    # fake inputs a copy of real weights cannot be made), which changes no FLOP and no saved tensor.
    masks = [b.attn_mask for b in clip_model.transformer.resblocks]
    copier, ref.copy = ref.copy, types.SimpleNamespace(deepcopy=lambda block: block)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            images, labels, text_tokens, visual_tokens, proj_rep = learnable(VIT_B16_SPEC, batch)
            with FlopCounterMode(display=False) as counter:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    loss = step_loss(clip_model, clip_model, tokens, images, labels, text_tokens, visual_tokens,
                                     proj_rep)
                loss.backward()
    finally:
        ref.copy = copier
        for block, mask in zip(clip_model.transformer.resblocks, masks):
            block.attn_mask = mask
    return counter.get_total_flops(), sum(saved.values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--class-counts", type=int, nargs="+", default=[50, 1000])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--measure", type=int, default=0, metavar="STEPS",
                   help="also run the step STEPS times on real tensors per class count (time, peak memory)")
    p.add_argument("--measure-one", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure == 1 or args.measure < 0:
        p.error(f"--measure {args.measure}: give 2 steps or more (the first, which fills the caches, is not timed), "
                "or 0 to count only")
    if args.measure_one:
        measure(args.measure_one, args.batch_size, args.measure)
        return 0
    clip_model = build_random_clip(VIT_B16_SPEC).eval().requires_grad_(False)
    weights_gb = sum(t.numel() * t.element_size() for t in clip_model.state_dict().values()) / 1024 ** 3
    rate = square_rate(torch.float32, torch.device("cpu"))
    print(f"reference step, ViT-B/16 shapes, batch {args.batch_size}, fp32; threads {torch.get_num_threads()}; "
          f"one 2048^3 fp32 product here: {rate:.0f} GFLOP/s; CLIP's weights {weights_gb:.2f} GB")
    print(f"{'classes':>7} {'GFLOP':>8} {'saved (GB)':>10} {'time >= (s)':>11} {'peak >= (GB)':>12}")
    for classes in args.class_counts:
        start = time.perf_counter()
        flops, saved = reference_step(clip_model, classes, args.batch_size)
        print(f"{classes:>7} {flops / 1e9:>8.1f} {saved / 1024 ** 3:>10.2f} {flops / 1e9 / rate:>11.2f} "
              f"{saved / 1024 ** 3 + weights_gb:>12.2f}   (counted in {time.perf_counter() - start:.0f} s)")
    print("lower bounds: the step's FLOPs at the rate of one large product; its saved activations plus "
          "one copy of CLIP's weights (the reference keeps a second, zero-shot CLIP besides)")
    if args.measure:
        print(f"measured, the written-out step on real tensors, {args.measure} steps per class count "
              "(time: mean of the steps after the first; peak: the process's resident maximum)")
        print(f"{'classes':>7} {'s / step':>9} {'peak (GB)':>10}   steps (s)")
        for classes in args.class_counts:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure-one", str(classes),
                                  "--measure", str(args.measure), "--batch-size", str(args.batch_size)],
                                 capture_output=True, text=True)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("MEASURED ")), None)
            if out.returncode != 0 or line is None:
                print(f"{classes:>7} failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
                continue
            _, _, per_step, peak, *times = line.split()
            print(f"{classes:>7} {float(per_step):>9.2f} {float(peak):>10.2f}   {' '.join(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
