"""Index samplers selected by name (``DATALOADER.*.SAMPLER``), and the distributed ones."""
from typing import Iterable, Iterator, List, Sequence

from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

from ..utils.distributed import split_range

__all__ = ["GlobalBatchSlicer", "ShardSampler", "build_sampler"]

# Dassl's domain and class samplers are left out: they serve domain adaptation and
# re-identification, which no trainer of the CoOp / MMRL lineage runs.
SAMPLER_NAMES = ["RandomSampler", "SequentialSampler"]


def build_sampler(sampler_type: str, cfg=None, data_source: Sequence = None, batch_size: int = 32) -> Sampler:
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    raise ValueError(f"Unknown sampler type: {sampler_type} (valid: {SAMPLER_NAMES})")


class GlobalBatchSlicer(Sampler):
    """Batches for one rank of a data-parallel run: its slice of each global batch of the
    one-process order.

    Every rank iterates the same ``sampler`` (the generators are in the same state on every rank,
    see :func:`mmrl.dassl.utils.distributed.sync_random_state`), cuts its order into global
    batches of ``global_batch`` indices exactly as a one-process DataLoader does (the last partial
    one dropped with ``drop_last``), and keeps positions [rank * b, (rank + 1) * b) of each, b =
    global_batch / world. So the ranks together see exactly the one-process batches, unlike
    torch's DistributedSampler, which reshuffles per rank. A partial last batch is split as evenly
    as possible.
    """

    def __init__(self, sampler: Iterable[int], global_batch: int, drop_last: bool, rank: int, world: int) -> None:
        if global_batch % world != 0:
            raise ValueError(f"the global batch {global_batch} does not divide by the world size {world}")
        self.sampler = sampler
        self.global_batch = global_batch
        self.drop_last = drop_last
        self.rank = rank
        self.world = world

    def __iter__(self) -> Iterator[List[int]]:
        batch: List[int] = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.global_batch:
                yield self._slice(batch)
                batch = []
        if batch and not self.drop_last:
            if len(batch) < self.world:
                raise ValueError(
                    f"the last batch holds {len(batch)} images, fewer than the {self.world} ranks; "
                    "use fewer processes or more training data"
                )
            yield self._slice(batch)

    def _slice(self, batch: List[int]) -> List[int]:
        start, stop = split_range(len(batch), self.world)[self.rank]
        return batch[start:stop]

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.global_batch if self.drop_last else -(-n // self.global_batch)


class ShardSampler(Sampler):
    """Rank ``rank``'s contiguous share of range(n) in order: concatenated in rank order, the shards
    are the dataset's order (evaluation gathers its outputs back this way)."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.start, self.stop = split_range(n, world)[rank]

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start
