"""Text-side cost of a training step, before and after the shared prefix and the length groups.

    python benchmarks/text_side.py --classes 1000 --device cpu
    python benchmarks/text_side.py --classes 1000 --device cuda --prec amp

At ViT-B/16 shapes with random weights (or the miniature CLIP with --spec mini), it times the class side of
a training step alone: the learned text features of all classes, forward and backward of a loss on them,
computed two ways: "whole" (every class runs BOS + K tokens + its prompt, padded to the longest: the
tower before the saving) and "shared" (the start and K tokens once per step, each class only its own
positions, prompts grouped by length). Each way runs in its own process so that its peak memory is its
own: the peak allocated CUDA memory on a GPU, on CPU the growth of the peak resident set size over the
size before the first step. It prints figures; it is not a test.
"""
import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAYS = ("whole", "shared")


def measure(args: argparse.Namespace) -> None:
    """One way, in this process: print a tab-separated line of figures."""
    import resource
    import time

    import torch

    from mmrl.dassl.engine.trainer import AUTOCAST_DTYPES
    from mmrl.demo.clip import MINI_SPEC, VIT_B16_SPEC, build_random_clip
    from mmrl.model.clip_loader import convert_weights
    from mmrl.model.memory import GB, choose_recompute, held_memory_bytes
    from mmrl.model.mmrl import RepresentationCLIP
    from mmrl.model.representation import RepArch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    clip_model = build_random_clip(VIT_B16_SPEC if args.spec == "vit-b16" else MINI_SPEC).requires_grad_(False)
    if args.prec == "fp16":
        convert_weights(clip_model)
    clip_model.to(device)
    arch = RepArch.from_clip(clip_model, "MMRL", 5, (6, 7, 8, 9, 10, 11, 12), 512)
    # The benchmark's class names of 1 to 6 words: prompts of 7 to 12 tokens (benchmarks/benchmark.py).
    words = ["red", "spotted", "mountain", "grey", "long", "tailed", "house", "river", "jet", "night"]
    prompts = [f"a photo of a {' '.join(words[(i + j) % len(words)] for j in range(1 + i % 6))}."
               for i in range(args.classes)]
    model = RepresentationCLIP(clip_model, prompts, arch, alpha=0.7).to(device)
    # "auto" decides as the trainers do, for the method configs' batch of 4 images.
    model.recompute, _ = choose_recompute(model, args.recompute, 4, args.prec, device)
    features = model.whole_sequence_text_features if args.way == "whole" else model.text_features
    autocast_dtype = AUTOCAST_DTYPES.get(args.prec)

    def step() -> None:
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float16, enabled=autocast_dtype is not None):
            w = features()
            loss = (1.0 - (w * model.w_zs).sum(-1)).mean()  # the text regulariser's form
        loss.backward()
        model.learner.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = held_memory_bytes(torch.device("cpu")) / GB
    step()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1024 ** 3
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2 - before
    eot = model.eot_index
    tokens = len(prompts) * (int(eot.max()) + 1 + arch.n_tokens) if args.way == "whole" \
        else int(eot.sum()) + 1 + arch.n_tokens
    print("\t".join(str(v) for v in (args.way, args.classes, tokens, f"{seconds:.3f}", f"{peak:.2f}")))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--spec", choices=["vit-b16", "mini"], default="vit-b16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--prec", choices=["fp32", "fp16", "amp", "bf16"], default="fp32")
    p.add_argument("--steps", type=int, default=2, help="timed steps (after one warm-up step)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--recompute", choices=["auto", "on", "off"], default="auto",
                   help="as TRAINER.<NAME>.RECOMPUTE (auto: as the trainers decide for a batch of 4)")
    p.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one measurement, in a child process
    args = p.parse_args(argv)
    if args.way:
        measure(args)
        return 0
    # This process never imports torch, so the children's peak sizes are their own.
    rows = []
    for way in WAYS:
        cmd = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]), "--way", way]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            print(f"text_side: the {way!r} measurement failed ({proc.returncode})")
            return 1
        rows.append(proc.stdout.strip().splitlines()[-1].split("\t"))
    peak = "peak CUDA GB" if args.device.startswith("cuda") else "peak RSS growth GB"
    print(f"text side of a training step: {args.spec}, random weights, {args.prec}, {args.device}, "
          f"{args.classes} classes, K 5, blocks 6..12")
    print(f"{'way':<8} {'tokens/block':>12} {'s/step':>8} {peak:>20}")
    for way, _, tokens, seconds, gb in rows:
        print(f"{way:<8} {tokens:>12} {seconds:>8} {gb:>20}")
    (_, _, t0, s0, m0), (_, _, t1, s1, m1) = rows
    print(f"shared/whole: tokens {int(t1) / int(t0):.2f}, time {float(s1) / float(s0):.2f}, "
          f"peak memory {float(m1) / max(float(m0), 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
