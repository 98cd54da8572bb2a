"""Index samplers selected by name (``DATALOADER.*.SAMPLER``)."""
import copy
import random
from collections import defaultdict
from typing import Dict, Iterable, Iterator, List, Sequence

import numpy as np
from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

from ..utils.distributed import split_range

__all__ = [
    "GlobalBatchSlicer",
    "RandomDomainSampler",
    "SeqDomainSampler",
    "RandomClassSampler",
    "ShardSampler",
    "build_sampler",
]

SAMPLER_NAMES = ["RandomSampler", "SequentialSampler", "RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler"]


def _indices_by(data_source: Sequence, attr: str) -> Dict[int, List[int]]:
    groups: Dict[int, List[int]] = defaultdict(list)
    for i, item in enumerate(data_source):
        groups[getattr(item, attr)].append(i)
    return groups


class _DomainSampler(Sampler):
    """Minibatches of ``batch_size / n_domain`` images from each of ``n_domain`` domains per
    round (``n_domain <= 0``: all domains; the domains of a round come from
    :meth:`round_domains`); the epoch ends once a drawn domain runs short of images."""

    def __init__(self, data_source: Sequence, batch_size: int, n_domain: int) -> None:
        self.data_source = data_source
        self.domain_dict = _indices_by(data_source, "domain")
        self.domains = self.order_domains(list(self.domain_dict.keys()))
        if n_domain is None or n_domain <= 0:
            n_domain = len(self.domains)
        if batch_size % n_domain != 0:
            raise ValueError(
                f"{type(self).__name__}: batch size {batch_size} is not divisible by n_domain={n_domain}"
            )
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def order_domains(self, domains: List[int]) -> List[int]:
        return domains

    def round_domains(self) -> List[int]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        domain_dict = copy.deepcopy(self.domain_dict)
        final_idxs: List[int] = []
        stop_sampling = False
        while not stop_sampling:
            for domain in self.round_domains():
                selected = random.sample(domain_dict[domain], self.n_img_per_domain)
                final_idxs.extend(selected)
                for idx in selected:
                    domain_dict[domain].remove(idx)
                if len(domain_dict[domain]) < self.n_img_per_domain:
                    stop_sampling = True
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


class RandomDomainSampler(_DomainSampler):
    """Each round draws ``n_domain`` random domains, in first-appearance order of the data."""

    def round_domains(self) -> List[int]:
        return random.sample(self.domains, self.n_domain)


class SeqDomainSampler(_DomainSampler):
    """Each round takes every domain, in sorted order."""

    def __init__(self, data_source: Sequence, batch_size: int) -> None:
        super().__init__(data_source, batch_size, n_domain=0)

    def order_domains(self, domains: List[int]) -> List[int]:
        return sorted(domains)

    def round_domains(self) -> List[int]:
        return self.domains


class RandomClassSampler(Sampler):
    """Each minibatch holds ``n_ins`` images of each of ``batch_size / n_ins``
    random classes (classes with fewer images are drawn with replacement)."""

    def __init__(self, data_source: Sequence, batch_size: int, n_ins: int) -> None:
        if batch_size < n_ins:
            raise ValueError(f"RandomClassSampler: batch_size={batch_size} must be no less than n_ins={n_ins}")
        self.data_source = data_source
        self.batch_size = batch_size
        self.n_ins = n_ins
        self.ncls_per_batch = batch_size // n_ins
        self.index_dic = _indices_by(data_source, "label")
        self.labels = list(self.index_dic.keys())
        if len(self.labels) < self.ncls_per_batch:
            raise ValueError(
                f"RandomClassSampler: {len(self.labels)} classes cannot fill {self.ncls_per_batch} classes per batch"
            )
        self.length = len(list(self.__iter__()))

    def __iter__(self) -> Iterator[int]:
        batch_idxs_dict: Dict[int, List[List[int]]] = defaultdict(list)
        for label in self.labels:
            idxs = copy.deepcopy(self.index_dic[label])
            if len(idxs) < self.n_ins:
                idxs = list(np.random.choice(idxs, size=self.n_ins, replace=True))
            random.shuffle(idxs)
            for start in range(0, len(idxs) - self.n_ins + 1, self.n_ins):
                batch_idxs_dict[label].append([int(i) for i in idxs[start:start + self.n_ins]])

        avai_labels = copy.deepcopy(self.labels)
        final_idxs: List[int] = []
        while len(avai_labels) >= self.ncls_per_batch:
            for label in random.sample(avai_labels, self.ncls_per_batch):
                final_idxs.extend(batch_idxs_dict[label].pop(0))
                if len(batch_idxs_dict[label]) == 0:
                    avai_labels.remove(label)
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


def build_sampler(
    sampler_type: str,
    cfg=None,
    data_source: Sequence = None,
    batch_size: int = 32,
    n_domain: int = 0,
    n_ins: int = 16,
) -> Sampler:
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomDomainSampler":
        return RandomDomainSampler(data_source, batch_size, n_domain)
    if sampler_type == "SeqDomainSampler":
        return SeqDomainSampler(data_source, batch_size)
    if sampler_type == "RandomClassSampler":
        return RandomClassSampler(data_source, batch_size, n_ins)
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
