"""Data-parallel runs under ``torchrun``: one process per GPU (or CPU process), equal to one process.

Started by torchrun (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` in the environment), the engine joins
a process group (NCCL on CUDA, Gloo on CPU), pins the process to its local GPU, and:

- splits each global batch of the one-process order into one contiguous slice per rank
  (``DATALOADER.TRAIN_X.BATCH_SIZE`` stays the global batch; see
  :class:`mmrl.dassl.data.samplers.GlobalBatchSlicer`);
- sums the gradients of every rank before the optimizer step (why a sum: :func:`all_reduce_gradients`);
- shards evaluation and gathers the outputs back in dataset order;
- lets only rank 0 write files (log, tensorboard, checkpoints, dataset caches).

Started without torchrun, every function here is a no-op or the identity, and the run is exactly
what it was. Nothing here knows about CLIP: a model asks for "its rows" of a tensor through
:class:`RowSharding`.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import random
import sys
import time
import traceback
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "PeerFailure",
    "PeerLost",
    "RowSharding",
    "all_reduce_gradients",
    "barrier",
    "broadcast_module",
    "broadcast_object",
    "check_global_batch",
    "gather_in_order",
    "gather_rows",
    "init_from_env",
    "peer_lost",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "local_rank",
    "main_process_first",
    "quiet_unless_main",
    "rank",
    "rank_prefix",
    "shutdown",
    "split_range",
    "sum_over_ranks",
    "sync_random_state",
    "world_size",
]

# Seconds a collective may wait for the other ranks before it fails (and the run with it): a rank
# that died or hangs ends every rank within this time instead of blocking them forever.
DEFAULT_TIMEOUT_S = 1800


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(use_cuda: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Join torchrun's process group when started by torchrun; returns whether this is a distributed run.

    NCCL when CUDA is used (each rank on GPU ``LOCAL_RANK``), Gloo otherwise. A process not started by
    torchrun is left alone.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return dist.is_initialized()
    timeout = datetime.timedelta(seconds=float(timeout_s))
    if use_cuda and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local} but this node has {torch.cuda.device_count()} GPU(s): start at most "
                f"{torch.cuda.device_count()} processes per node (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", timeout=timeout, device_id=torch.device("cuda", local))
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return True


def shutdown(failed: bool = False) -> None:
    """Leave the process group: after a final barrier on success; at once on error (the other ranks
    may be gone, and waiting for them would hang)."""
    if not dist.is_initialized():
        return
    if not failed:
        dist.barrier()
    if failed and dist.get_backend() == "nccl":
        # NCCL communicators with unfinished work can block in destroy; the process exits anyway.
        return
    dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main_process() -> bool:
    """Rank 0, the only process that writes files; True without torchrun."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


class PeerFailure(RuntimeError):
    """Another rank failed at a point where this one waited for it; the message is that rank's error."""


class PeerLost(RuntimeError):
    """Another rank stopped (killed, out of memory, its node lost) while this one exchanged with it.

    The message is the one line the run ends with, e.g. ``rank 1 stopped (connection reset)
    during epoch 2; rerun the same command to resume from epoch 1``.
    """

    def __init__(self, message: str, interrupted: int = 0) -> None:
        super().__init__(message)
        self.interrupted = interrupted  # the signal that came while naming the lost ranks (0: none)


# Seconds a rank that saw a peer fail waits for the other survivors to say they are alive: the
# ranks that do not are the ones that stopped.
ROLL_CALL_S = 3.0
_ROLL_CALL_KEY = "mmrl/alive-after-failure/"

# What the backends' messages say, as the few words of the one line.
_BACKEND_REASONS = (
    ("reset by peer", "connection reset"),
    ("closed by peer", "connection closed"),
    ("connection closed", "connection closed"),
    ("broken pipe", "connection broken"),
    ("timed out", "no answer within DISTRIBUTED.TIMEOUT"),
    ("timeout", "no answer within DISTRIBUTED.TIMEOUT"),
    ("nccl", "NCCL error"),
)


def _raised_by_backend(err: BaseException) -> bool:
    """Whether ``err`` comes from torch.distributed itself: one of its error types (NCCL's
    DistBackendError, the store's errors), or any exception (Gloo raises a plain RuntimeError)
    whose innermost frame is in torch.distributed."""
    if isinstance(err, dist.DistError):
        return True
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and f"{os.sep}torch{os.sep}distributed{os.sep}" in frames[-1].filename


def _backend_reason(err: BaseException) -> str:
    text = str(err).lower()
    for needle, words in _BACKEND_REASONS:
        if needle in text:
            return words
    return type(err).__name__


def _roll_call(timeout_s: float) -> Tuple[Optional[List[int]], int]:
    """(the ranks that did not answer within ``timeout_s``, a signal that came meanwhile or 0).

    Every surviving rank writes its key in the launcher's store (torchrun's agent holds it, so it
    outlives a dead worker) and reads the others'. None: the store could not be asked.
    """
    from mmrl.dassl.engine.interrupt import RunInterrupted

    me, world = rank(), world_size()
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(f"{_ROLL_CALL_KEY}{me}", "1")
    except Exception:  # the store went with the failure: nothing to ask
        return None, 0
    missing = [r for r in range(world) if r != me]
    deadline = time.time() + timeout_s
    try:
        while missing and time.time() < deadline:
            missing = [r for r in missing if not store.check([f"{_ROLL_CALL_KEY}{r}"])]
            if missing:
                time.sleep(0.1)
    except RunInterrupted as interrupt:  # torchrun stops the survivors once it sees a worker die
        return missing, interrupt.signum
    except Exception:
        return None, 0
    return missing, 0


def peer_lost(err: BaseException, where: str = "", advice: str = "rerun the same command to resume",
              timeout_s: float = ROLL_CALL_S) -> Optional[PeerLost]:
    """The :class:`PeerLost` that ``err`` means in a distributed run (None when it is not a
    failure of the process group), naming the ranks that stopped."""
    if isinstance(err, PeerLost):
        return err
    if not is_distributed() or not _raised_by_backend(err):
        return None
    lost, signum = _roll_call(timeout_s)
    if lost == [] and not signum:
        return None  # every rank answered: a failure of the exchange itself, not of a peer
    reason = _backend_reason(err)
    if not lost:
        who = "another rank stopped"
    elif len(lost) == 1:
        who = f"rank {lost[0]} stopped"
    else:
        who = f"ranks {', '.join(map(str, lost))} stopped"
    return PeerLost(f"{who} ({reason}){' ' + where if where else ''}; {advice}", signum)


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (writing caches, splits, downloads); the others wait for it and
    then run it themselves, reading what rank 0 wrote instead of writing it at the same time.

    If the block fails on rank 0, the others stop with rank 0's error instead of running it.
    """
    if not is_distributed():
        yield
        return
    if is_main_process():
        try:
            yield
        except BaseException as err:
            broadcast_object(f"{type(err).__name__}: {err}")
            raise
        broadcast_object(None)
    else:
        failure = broadcast_object(None)
        if failure is not None:
            raise PeerFailure(f"rank 0 failed: {failure}")
        yield


def _collective_device() -> torch.device:
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` on every rank (picklable objects)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src, device=_collective_device())
    return box[0]


def sync_random_state() -> None:
    """Give every rank rank 0's Python, NumPy and torch (CPU) generator states.

    Rank 0 does everything a single process does (it alone draws the few-shot split the first time),
    so after this every rank continues the one-process random stream: the same sampler order and the
    same initial weights on every rank.
    """
    if not is_distributed():
        return
    state = broadcast_object((random.getstate(), np.random.get_state(), torch.get_rng_state()))
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Overwrite every parameter and buffer of ``module`` with rank ``src``'s."""
    if not is_distributed():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.numel():
            dist.broadcast(tensor.data, src=src)


def check_global_batch(global_batch: int, key: str = "DATALOADER.TRAIN_X.BATCH_SIZE") -> int:
    """The per-rank batch of a global batch; an error naming both numbers unless it divides."""
    world = world_size()
    if global_batch % world != 0:
        raise ValueError(
            f"{key} {global_batch} is the global batch and must divide by the world size {world}: "
            f"use a multiple of {world} or a number of processes that divides {global_batch}"
        )
    return global_batch // world


def split_range(n: int, parts: int) -> List[Tuple[int, int]]:
    """[start, stop) of ``parts`` contiguous pieces of range(n), sizes differing by at most one."""
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def sum_over_ranks(values: Sequence[float]) -> List[float]:
    """The element-wise sum of ``values`` over all ranks (``values`` itself in one process)."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum the gradients of ``params`` over all ranks (a missing gradient counts as zero).

    Why a sum gives exactly the one-process update. With B the global batch, rank r holding B_r of
    its images and C_r of the C classes, the one-process loss is

        L = CE-and-image terms averaged over B + reg * (1 - mean over C of cos(w_c, w_c^zs)).

    Rank r computes ell_r = (B_r / B) * (its CE and image terms, averaged over B_r)
                          + (C_r / C) * reg * (1 - mean over its C_r classes of cos),
    so that sum_r ell_r = L. The text features of all classes, W, are all-gathered with autograd:
    rank r's logits depend on every rank's rows of W, and the gather's backward sums into each
    rank's rows the gradient that every rank's loss sends them. So after rank r's backward, the
    gradient of its own text rows is d(sum_k ell_k)/dW_r = dL/dW_r, and the gradient through its
    images is d ell_r / d theta. Summing the parameter gradients over ranks then gives

        sum_r [d ell_r/d theta (images) + dL/dW_r dW_r/d theta] = dL/d theta,

    the one-process gradient (a mean over ranks would divide it by the world size). The losses
    therefore must be the rank's share of the global loss, not a per-rank mean.
    """
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g)
        offset += g.numel()


class _AllGatherRows(torch.autograd.Function):
    """All-gather of equally sized [w, ...] pieces into [world * w, ...]; the backward sums every
    rank's gradient of the whole and hands each rank the rows of its own piece."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor) -> torch.Tensor:
        pieces = [torch.empty_like(local) for _ in range(world_size())]
        dist.all_gather(pieces, local.contiguous())
        return torch.cat(pieces)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        width = total.shape[0] // world_size()
        return total[rank() * width:(rank() + 1) * width]


def gather_rows(local: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Concatenate every rank's ``local`` rows [sizes[r], ...] in rank order, with autograd.

    Gradients flow back to each rank's own rows, summed over the ranks that used them (the
    gather's backward), which :func:`all_reduce_gradients` relies on.
    """
    if not is_distributed():
        return local
    width = max(sizes)
    if local.shape[0] < width:
        pad = local.new_zeros((width - local.shape[0],) + tuple(local.shape[1:]))
        local = torch.cat([local, pad])
    whole = _AllGatherRows.apply(local)
    return torch.cat([whole[r * width:r * width + n] for r, n in enumerate(sizes)])


@torch.no_grad()
def gather_in_order(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``local`` [n_r, ...] in rank order (n_r may differ), no autograd.

    With contiguous shards of a dataset (:class:`mmrl.dassl.data.samplers.ShardSampler`) this is
    the dataset's order.
    """
    if not is_distributed():
        return local
    device = _collective_device()
    n = torch.tensor([local.shape[0]], device=device)
    counts = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(counts, n)
    sizes = [int(c.item()) for c in counts]
    moved = local.to(device)
    width = max(sizes)
    if moved.shape[0] < width:
        moved = torch.cat([moved, moved.new_zeros((width - moved.shape[0],) + tuple(moved.shape[1:]))])
    pieces = [torch.empty_like(moved) for _ in sizes]
    dist.all_gather(pieces, moved.contiguous())
    return torch.cat([p[:k] for p, k in zip(pieces, sizes)]).to(local.device)


class RowSharding:
    """This rank's contiguous share of the rows of an n-row table (e.g. the classes), and the way
    back to the whole table. Every rank needs at least one row."""

    def __init__(self, what: str = "rows") -> None:
        self.what = what

    def bounds(self, n: int) -> List[Tuple[int, int]]:
        world = world_size()
        if n < world:
            raise ValueError(
                f"{n} {self.what} cannot be shared by {world} ranks (every rank needs at least one): "
                f"run at most {n} processes"
            )
        return split_range(n, world)

    def rows(self, n: int) -> slice:
        """This rank's rows of an n-row table."""
        start, stop = self.bounds(n)[rank()]
        return slice(start, stop)

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The whole [n, ...] table from every rank's rows (differentiable)."""
        return gather_rows(local, [stop - start for start, stop in self.bounds(n)])


def rank_prefix() -> str:
    """"[rank R] " in a distributed run (so interleaved error lines say whose they are), else ""."""
    return f"[rank {rank()}] " if is_distributed() else ""


def quiet_unless_main() -> None:
    """Send the standard output of ranks other than 0 to /dev/null (errors still go to stderr)."""
    if not is_main_process():
        sys.stdout = open(os.devnull, "w")
