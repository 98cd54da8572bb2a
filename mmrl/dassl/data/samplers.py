"""Index samplers selected by name (``DATALOADER.*.SAMPLER``)."""
import copy
import random
from collections import defaultdict
from typing import Dict, Iterator, List, Sequence

import numpy as np
from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

__all__ = ["RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler", "build_sampler"]

SAMPLER_NAMES = ["RandomSampler", "SequentialSampler", "RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler"]


def _indices_by(data_source: Sequence, attr: str) -> Dict[int, List[int]]:
    groups: Dict[int, List[int]] = defaultdict(list)
    for i, item in enumerate(data_source):
        groups[getattr(item, attr)].append(i)
    return groups


class RandomDomainSampler(Sampler):
    """Each minibatch holds ``batch_size / n_domain`` images from each of
    ``n_domain`` randomly chosen domains; the epoch ends once a chosen domain
    runs short of images. ``n_domain <= 0`` means all domains."""

    def __init__(self, data_source: Sequence, batch_size: int, n_domain: int) -> None:
        self.data_source = data_source
        self.domain_dict = _indices_by(data_source, "domain")
        self.domains = list(self.domain_dict.keys())
        if n_domain is None or n_domain <= 0:
            n_domain = len(self.domains)
        if batch_size % n_domain != 0:
            raise ValueError(f"RandomDomainSampler: batch size {batch_size} is not divisible by n_domain={n_domain}")
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def __iter__(self) -> Iterator[int]:
        domain_dict = copy.deepcopy(self.domain_dict)
        final_idxs: List[int] = []
        stop_sampling = False
        while not stop_sampling:
            for domain in random.sample(self.domains, self.n_domain):
                selected = random.sample(domain_dict[domain], self.n_img_per_domain)
                final_idxs.extend(selected)
                for idx in selected:
                    domain_dict[domain].remove(idx)
                if len(domain_dict[domain]) < self.n_img_per_domain:
                    stop_sampling = True
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


class SeqDomainSampler(Sampler):
    """Each minibatch holds ``batch_size / n_domains`` random images of every
    domain, domains in sorted order."""

    def __init__(self, data_source: Sequence, batch_size: int) -> None:
        self.data_source = data_source
        self.domain_dict = _indices_by(data_source, "domain")
        self.domains = sorted(self.domain_dict.keys())
        n_domain = len(self.domains)
        if batch_size % n_domain != 0:
            raise ValueError(f"SeqDomainSampler: batch size {batch_size} is not divisible by {n_domain} domains")
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def __iter__(self) -> Iterator[int]:
        domain_dict = copy.deepcopy(self.domain_dict)
        final_idxs: List[int] = []
        stop_sampling = False
        while not stop_sampling:
            for domain in self.domains:
                selected = random.sample(domain_dict[domain], self.n_img_per_domain)
                final_idxs.extend(selected)
                for idx in selected:
                    domain_dict[domain].remove(idx)
                if len(domain_dict[domain]) < self.n_img_per_domain:
                    stop_sampling = True
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


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
