"""How close a training step comes to this machine's limit, at real CLIP shapes with random weights.

    python benchmarks/roofline.py --trainer MMRL --device cpu --batch-size 4
    python benchmarks/roofline.py --precs fp32 --class-counts 50 --recompute off --profile

For each precision x class count x RECOMPUTE mode it builds the model of benchmarks/benchmark.py and
prints:
- the FLOPs of one training step, counted with torch.utils.flop_counter.FlopCounterMode, forward and
  backward, by part (image tower, zero-shot image branch, text side, loss; mmrl.model.flops);
- the time per step (forward, loss, backward, AdamW step; after a warm-up step);
- the achieved rate, FLOPs / time;
- the floor: every counted product of the step (matrix products, the patch convolution, attention,
  forward and backward, as the step ran them: same shapes, strides, dtype and threads) replayed alone
  on random data and timed here, in the same run; their summed time is the least the step could take
  at this machine's speed for those products, and FLOPs / floor is the machine's peak at the step's
  own shapes;
- the fraction of the floor the step reaches: floor / step time (= achieved / peak).
Also the rate of one large square product (2048^3) in each precision, for scale.

``--profile`` adds a torch.profiler summary of one step: time by operator category (matrix products,
attention, norms / activations / elementwise, copies and casts, optimizer, other operators) and the
Python overhead (the step's wall time outside any operator). It prints figures; it is not a test.
"""
import argparse
import collections
import os
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark import SPECS, autocast, build, step_function, sync, timed  # noqa: E402

from mmrl.model.flops import IMAGE, LOSS, TEXT, ZERO_SHOT, counted, step_flops  # noqa: E402


# ---- the floor: the step's own products, replayed alone -----------------------------------------
class _Spec(tuple):
    """A tensor argument, remembered by layout only: (shape, stride, dtype, device)."""


def _spec(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return _Spec((tuple(value.shape), tuple(value.stride()), value.dtype, str(value.device)))
    return value


def _materialise(value: Any) -> Any:
    if isinstance(value, _Spec):
        shape, stride, dtype, device = value
        t = torch.empty_strided(shape, stride, dtype=dtype, device=device)
        return t.normal_() if t.is_floating_point() else t.zero_()
    return value


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and not isinstance(value, _Spec):
        return tuple(_hashable(v) for v in value)
    return value


class ProductRecorder(TorchDispatchMode):
    """Records every operator the FLOP counter counts, by (operator, argument layouts): calls and FLOPs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Dict[Tuple, List] = {}  # key -> [operator, args, kwargs, calls, flops per call]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_counter.flop_registry.get(func._overloadpacket)
        if formula is not None:
            a, k = tree_map(_spec, args), tree_map(_spec, kwargs)
            key = (str(func), _hashable(a), _hashable(tuple(sorted(k.items()))))
            entry = self.calls.get(key)
            if entry is None:
                entry = self.calls[key] = [func, a, k, 0, formula(*args, **kwargs, out_val=out)]
            entry[3] += 1
        return out


def replay(calls: Dict[Tuple, List], device: torch.device, min_time: float = 0.05) -> Tuple[float, int]:
    """(seconds, FLOPs) of every recorded call run again alone: each distinct call timed after a
    warm-up (repeated until ``min_time``), times its count."""
    seconds, flops = 0.0, 0
    with torch.no_grad():
        for func, args, kwargs, count, per_call in calls.values():
            a, k = tree_map(_materialise, args), tree_map(_materialise, kwargs)
            func(*a, **k)  # warm-up
            reps, start = 0, time.perf_counter()
            while True:
                func(*a, **k)
                reps += 1
                sync(device)
                elapsed = time.perf_counter() - start
                if elapsed >= min_time or reps >= 50:
                    break
            seconds += count * elapsed / reps
            flops += count * per_call
    return seconds, flops


def square_rate(dtype: torch.dtype, device: torch.device, n: int = 2048) -> float:
    """GFLOP/s of one n x n x n product in ``dtype``, best of three."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(3):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


# ---- the profile ----------------------------------------------------------------------------------
CATEGORIES = (
    ("matrix products", ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "convolution", "mkldnn",
                         "_convolution", "convolution_backward", "dot")),
    ("attention", ("scaled_dot_product", "flash_attention", "efficient_attention")),
    ("norms, activations, elementwise", ("layer_norm", "sigmoid", "gelu", "mul", "add", "sub", "div", "neg",
                                         "exp", "log", "sum", "mean", "norm", "softmax", "cross_entropy",
                                         "nll_loss", "clamp", "where", "rsqrt", "sqrt", "pow", "max", "min",
                                         "cosine", "threshold", "fill_", "zero_", "ones_like", "zeros_like",
                                         "argmax")),
    ("copies, casts, allocation", ("copy", "_to_copy", "to", "cat", "clone", "contiguous", "index",
                                   "stack", "empty", "empty_strided", "new_", "expand", "select_backward",
                                   "slice_backward", "gather", "scatter", "resize")),
)


def category(name: str) -> str:
    op = name.split("::", 1)[-1]
    for label, keys in CATEGORIES:
        if any(op == k or op.startswith(k + "_") or (len(k) > 4 and k in op) for k in keys):
            return label
    return "other operators"


def profile_step(train_step: Callable[[], None], device: torch.device) -> Tuple[float, Dict[str, float]]:
    """(wall seconds of one step, seconds by category); operator times are self times, so the
    categories and the Python overhead sum to the wall time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        train_step()
        sync(device)
        wall = time.perf_counter() - start
    by = collections.Counter()
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent, in_optimizer = event.cpu_parent, False
        while parent is not None:
            if parent.name.startswith("Optimizer.step"):
                in_optimizer = True
                break
            parent = parent.cpu_parent
        by["optimizer" if in_optimizer else category(event.name)] += event.self_cpu_time_total / 1e6
    by["Python and framework overhead (outside operators)"] = max(0.0, wall - sum(by.values()))
    return wall, dict(by)


# ---- the table ------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainer", choices=["MMRL", "MMRLpp"], default="MMRL")
    p.add_argument("--spec", choices=sorted(SPECS), default="vit-b16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precs", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    p.add_argument("--class-counts", type=int, nargs="+", default=[50, 1000])
    p.add_argument("--recompute", nargs="+", choices=["off", "on"], default=["off", "on"])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up step)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--profile", action="store_true", help="a torch.profiler summary of one step per row")
    return p.parse_args(argv)


def machine(device: torch.device) -> str:
    """The processor and the kernels the fraction is measured with: it depends on both (how fast the
    products run against the elementwise work and the memory), so rows of two machines differ."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    name = "unknown processor"
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    blas = "MKL" if torch.backends.mkl.is_available() else "not MKL"
    return (f"{name}, {os.cpu_count()} cores; torch {torch.__version__}, CPU kernels "
            f"{torch.backends.cpu.get_cpu_capability()}, BLAS {blas}")


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"trainer {args.trainer} ({args.spec}, random weights, {device}), batch {args.batch_size}, "
          f"{args.steps} timed steps; threads {torch.get_num_threads()}; load average "
          f"{os.getloadavg()[0]:.2f} at the start")
    print(f"machine: {machine(device)}")
    for prec in args.precs:
        dtype = torch.bfloat16 if prec == "bf16" else torch.float32
        print(f"one 2048^3 product, {prec}: {square_rate(dtype, device):.0f} GFLOP/s")
    rows, profiles = [], []
    for classes in args.class_counts:
        bench = argparse.Namespace(trainer=args.trainer, spec=args.spec, threads=args.threads, classes=classes,
                                   prec="fp32", batch_size=args.batch_size, compile=False, recompute="off",
                                   memory_budget_gb=0.0)
        model, optim, res = build(bench, device)
        model.learner.train()
        for prec in args.precs:
            for mode in args.recompute:
                bench.prec = prec
                model.recompute = mode == "on"
                images = torch.randn(args.batch_size, 3, res, res, device=device)
                labels = torch.randint(0, classes, (args.batch_size,), device=device)
                parts = step_flops(model, images, labels, 1.0, lambda: autocast(bench, device))
                model.learner.zero_grad(set_to_none=True)
                train_step = step_function(bench, device, model, optim, res, args.batch_size)
                _, step_s = timed(train_step, args.steps, device)
                recorder = ProductRecorder()

                def one_step() -> None:
                    with autocast(bench, device):
                        loss = model.forward_train(images, labels, reg_weight=1.0).loss
                    loss.backward()

                with recorder:
                    one_step()
                model.learner.zero_grad(set_to_none=True)
                floor_s, floor_flops = replay(recorder.calls, device)
                _, total = counted(one_step)
                model.learner.zero_grad(set_to_none=True)
                if total != parts.total or total != floor_flops:
                    print(f"warning: counts differ (step {total}, by part {parts.total}, replayed {floor_flops})")
                rows.append((prec, classes, mode, parts, step_s, floor_s))
                print(f"measured {prec}, {classes} classes, recompute {mode}: {parts.total / 1e9:.1f} GFLOP, "
                      f"{step_s:.3f} s per step, floor {floor_s:.3f} s ({floor_s / step_s:.0%}); load average "
                      f"{os.getloadavg()[0]:.2f}", flush=True)
                if args.profile:
                    train_step()
                    profiles.append(((prec, classes, mode), profile_step(train_step, device)))
        del model, optim

    g = 1e9
    print()
    print("GFLOP per step by part, forward + backward (FlopCounterMode; products only)")
    print(f"{'prec':>5} {'classes':>7} {'recompute':>9} {'image':>13} {'zero-shot':>9} {'text':>13} "
          f"{'loss':>6} {'total':>7}")
    for prec, classes, mode, parts, _, _ in rows:
        def fb(name: str) -> str:
            return f"{parts.forward[name] / g:.1f}+{parts.backward[name] / g:.1f}"
        print(f"{prec:>5} {classes:>7} {mode:>9} {fb(IMAGE):>13} {parts.forward[ZERO_SHOT] / g:>9.1f} "
              f"{fb(TEXT):>13} {parts.part(LOSS) / g:>6.3f} {parts.total / g:>7.1f}")
    print()
    print("time per step against the floor (the step's own products replayed alone, same run)")
    print(f"{'prec':>5} {'classes':>7} {'recompute':>9} {'GFLOP':>7} {'step (s)':>8} {'GFLOP/s':>8} "
          f"{'peak GFLOP/s':>12} {'floor (s)':>9} {'of floor':>8}")
    for prec, classes, mode, parts, step_s, floor_s in rows:
        print(f"{prec:>5} {classes:>7} {mode:>9} {parts.total / g:>7.1f} {step_s:>8.3f} "
              f"{parts.total / step_s / g:>8.1f} {parts.total / floor_s / g:>12.1f} {floor_s:>9.3f} "
              f"{floor_s / step_s:>8.0%}")
    print("of floor: floor / step time = achieved GFLOP/s / peak GFLOP/s; with recompute on, the FLOPs "
          "include the forward run again in backward")
    for (prec, classes, mode), (wall, by) in profiles:
        print()
        print(f"profile: {prec}, {classes} classes, recompute {mode}: {wall:.3f} s (profiled step)")
        for label, seconds in sorted(by.items(), key=lambda kv: -kv[1]):
            print(f"  {label:<52} {seconds:>7.3f} s {seconds / wall:>5.0%}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
