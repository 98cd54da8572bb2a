"""Whether a training step recomputes its token-carrying blocks: an estimate of the step's activation
memory in both modes against a memory budget.

Recomputing saves memory and costs time (the blocks from the first insertion layer on run twice), so
``auto`` keeps the activations whenever they fit the budget (:func:`memory_budget`: half the free
memory of a GPU; on CPU also no more than the run already holds). The estimate counts what autograd keeps
for the backward of one stock CLIP block on x [L, N, D] (T = L N tokens; the frozen weights need no
gradient, so no product keeps its input; tests/test_memory.py checks it against the tensors autograd
actually saves):

- the inputs of both layer norms, fp32 even in half precision (2 T D x 4 bytes) and their mean and
  reciprocal std (2 T x 2 x 4 bytes);
- the attention's q, k, v (the in-projection's output, 3 T D), its output (T D) and log-sum-exp
  (T x heads x 4 bytes); in the text tower's shared-prefix blocks, each group's keys and values
  joined to the prefix's (2 D x (classes x prefix + own positions));
- the MLP's hidden state, as 1.702 x for QuickGELU's one-kernel backward (mmrl.model.towers), 4 T D;
each of the products' outputs in the precision they run in (4 bytes, or 2 under fp16 / amp / bf16).
With recomputation, a block keeps only its input (the residual stream: fp32, fp16 under PREC fp16),
and one block's activations (in the text tower, one class group's) are live again at a time in backward.
"""
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

GB = 1024 ** 3
# The share of the free memory an activation estimate may take when no budget is configured: the
# rest is for what the estimate leaves out (gradients in flight, the allocator's slack, evaluation
# batches, data loading) and for other processes.
FREE_MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class TowerShape:
    """The part of a tower that trains: ``blocks`` blocks on ``tokens`` positions of width ``width``."""

    tokens: int  # T, summed over the sequences (image: batch x (1 + patches + K))
    width: int  # D
    heads: int
    blocks: int  # blocks that carry tokens (from the first insertion layer on)
    joined_kv: int = 0  # text: positions whose keys and values are joined to the prefix's, summed
    # What one recomputation rebuilds in backward, when less than a whole block (text: one class group)
    unit: Optional["TowerShape"] = None


def block_activation_bytes(shape: TowerShape, product_bytes: int) -> int:
    """What autograd keeps for the backward of one block of ``shape`` (see the module docstring)."""
    t, d = shape.tokens, shape.width
    norms = 2 * t * d * 4 + 2 * t * 2 * 4
    attention = 4 * t * d * product_bytes + t * shape.heads * 4 + 2 * d * shape.joined_kv * product_bytes
    mlp = 4 * t * d * product_bytes
    return norms + attention + mlp


def activation_bytes(towers: Tuple[TowerShape, ...], precision: str, recompute: bool) -> int:
    """The step's activation memory estimate: every training block's, or with ``recompute`` their
    inputs and the largest block's activations (rebuilt in backward one block at a time)."""
    product_bytes = 2 if precision in ("fp16", "amp", "bf16") else 4
    if not recompute:
        return sum(s.blocks * block_activation_bytes(s, product_bytes) for s in towers)
    residual_bytes = 2 if precision == "fp16" else 4
    inputs = sum(s.blocks * s.tokens * s.width * residual_bytes for s in towers)
    return inputs + max(block_activation_bytes(s.unit or s, product_bytes) for s in towers)


def model_towers(model: torch.nn.Module, batch: int) -> Tuple[TowerShape, ...]:
    """The training parts of a ``RepresentationCLIP`` step on ``batch`` images (this process's classes)."""
    visual = model.clip_model.visual
    k = model.arch.n_tokens
    patches = (visual.input_resolution // visual.conv1.kernel_size[0]) ** 2
    image_blocks = model.image_tower.n_layers - model.start
    text_blocks = model.text_tower.n_layers - model.start
    groups = model.class_groups()
    prefix = 1 + k
    n_classes = sum(g.shape[1] for g in groups.groups)
    image = TowerShape(batch * (1 + patches + k), visual.conv1.weight.shape[0],
                       visual.transformer.resblocks[0].attn.num_heads, image_blocks)
    text_attn = model.text_tower.blocks[0].attn
    width, heads = text_attn.embed_dim, text_attn.num_heads
    # With recomputation each class group runs again on its own (the prefix's few positions are kept).
    largest = max(groups.groups, key=lambda g: g.shape[0] * g.shape[1])
    unit = TowerShape(largest.shape[0] * largest.shape[1], width, heads, 1,
                      joined_kv=largest.shape[1] * prefix + largest.shape[0] * largest.shape[1])
    text = TowerShape(prefix + groups.n_tokens, width, heads, text_blocks,
                      joined_kv=n_classes * prefix + groups.n_tokens, unit=unit)
    return image, text


def free_memory_bytes(device: torch.device) -> int:
    """Memory a new allocation can take now: CUDA's free memory, or the system's available memory
    (MemAvailable of /proc/meminfo, capped by a cgroup limit when one is set)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = open(path).read().strip()
            used_path = path.replace("memory.max", "memory.current").replace("limit_in_bytes", "usage_in_bytes")
            if limit.isdigit() and int(limit) < 1 << 60:
                available = min(available, int(limit) - int(open(used_path).read().strip()))
                break
        except (OSError, ValueError):
            continue
    return max(0, available)


def held_memory_bytes(device: torch.device) -> int:
    """What this run holds now: CUDA memory allocated on ``device``, or this process's resident size."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on a 64-bit system
# (DEFAULT_MMAP_THRESHOLD_MAX); mallopt takes an int, so "never trim" is the largest int.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP_BLOCKS_UP_TO = 32 * 1024 ** 2
_NEVER_TRIM = 2 ** 31 - 1
# A user who tunes glibc's allocator with its own variables keeps those settings.
_MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> str:
    """Have glibc keep the memory a CPU training step frees for the next step, and say so in one line.

    A step allocates and frees the same activation-sized tensors every time. By default glibc gives
    them back to the system: a block above its adaptive mmap threshold is a fresh mapping, unmapped
    when freed, and the top of its heap is trimmed once more than twice that threshold is free. The
    next step then faults the same pages in again: at ViT-B/16 on a 2-core CPU, 5,000 to 40,000 page
    faults per step at 50 classes (up to 0.3 s of system time), 55,000 to 90,000 at 1000 (up to 0.5 s).
    With blocks up to 32 MB taken from the heap and the heap never trimmed, a step after the first
    faults none in; the peak resident size stays what the step's own peak needs (the heap keeps what
    it reached, it does not grow past it).

    Process-wide and lasting; done only under glibc, and not when one of glibc's MALLOC_ variables
    or a glibc.malloc tunable is set (the user's settings are kept)."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "the system's allocator as it is (not glibc)"
    tuned = [v for v in _MALLOC_VARIABLES if v in os.environ]
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        tuned.append("GLIBC_TUNABLES")
    if tuned:
        return f"glibc's allocator as {tuned[0]} sets it"
    libc = ctypes.CDLL(None)
    if not (libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCKS_UP_TO) and libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)):
        return "glibc's allocator as it is (mallopt refused the settings)"
    return (f"freed memory kept for the next step (glibc: blocks up to {_HEAP_BLOCKS_UP_TO // 1024 ** 2} MB from "
            "its heap, the heap not trimmed; MALLOC_TRIM_THRESHOLD_ or another MALLOC_ variable keeps your own)")


def memory_budget(device: torch.device, budget_gb: float = 0.0) -> Tuple[int, str]:
    """(bytes, where the figure comes from): ``budget_gb`` when positive, else a share of the free
    memory, and on CPU at most what the run already holds.

    A GPU is the run's own, so half its free memory may go to activations. Host memory is not: the
    data loader's worker processes, a sweep's other jobs on the machine and the page cache the images
    are read from live in it too, and each job's view of the available memory is taken at its own
    start. So on CPU the kept activations may at most double the run's footprint (CLIP, its caches,
    the data); a step that would need more recomputes, which costs 20-40% more time where it saves
    half of the run's memory or more (MEMORY_BUDGET_GB overrides it)."""
    if budget_gb and budget_gb > 0:
        return int(budget_gb * GB), f"budget {budget_gb:g} GB (MEMORY_BUDGET_GB)"
    free = free_memory_bytes(device)
    share = FREE_MEMORY_SHARE
    what = "free CUDA memory" if device.type == "cuda" else "available memory"
    # The processes of a node share its memory on CPU (torchrun sets LOCAL_WORLD_SIZE); a GPU is one rank's.
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if device.type == "cpu" else 1
    if local > 1:
        share /= local
        what += f", shared by {local} processes"
    if device.type == "cpu":
        held = held_memory_bytes(device)
        if held < share * free:
            return held, (f"budget {held / GB:.2f} GB (what this run holds: on CPU the kept activations "
                          f"may at most double it; {share:.0%} of the {free / GB:.1f} GB {what} is more)")
    return int(share * free), f"budget {share * free / GB:.1f} GB ({share:.0%} of {free / GB:.1f} GB {what})"


def decide_recompute(choice: str, off_bytes: int, on_bytes: int, budget_bytes: Optional[int],
                     budget_text: str = "") -> Tuple[bool, str]:
    """(recompute?, the reason, one line). ``choice`` "on" / "off" is obeyed; "auto" keeps the
    activations (faster) when their estimate ``off_bytes`` fits the budget, and recomputes otherwise."""
    figures = f"activations estimated at {off_bytes / GB:.2f} GB kept, {on_bytes / GB:.2f} GB recomputed"
    if choice in ("on", "off"):
        return choice == "on", f"as configured; {figures}"
    if choice != "auto":
        raise ValueError(f"RECOMPUTE must be auto, on or off, got {choice!r}")
    if off_bytes <= budget_bytes:
        return False, f"auto: {figures}, kept: {off_bytes / GB:.2f} GB fits the {budget_text}"
    return True, f"auto: {figures}, recomputed: {off_bytes / GB:.2f} GB exceeds the {budget_text}"


def choose_recompute(model: torch.nn.Module, choice: str, batch: int, precision: str, device: torch.device,
                     budget_gb: float = 0.0) -> Tuple[bool, str]:
    """``decide_recompute`` for a ``RepresentationCLIP`` training on ``batch`` images per step."""
    towers = model_towers(model, batch)
    off, on = activation_bytes(towers, precision, False), activation_bytes(towers, precision, True)
    budget, text = memory_budget(device, budget_gb) if choice == "auto" else (None, "")
    return decide_recompute(choice, off, on, budget, text)
