"""Small file-system, seeding and environment helpers."""
from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
import random
import warnings
from typing import Any, Iterator, List

import numpy as np
import torch

from mmrl.files import atomic_write, atomic_write_bytes, created_file_mode, mkdir_if_missing  # noqa: F401


def check_isfile(fpath: str) -> bool:
    """True if ``fpath`` is a file; otherwise warn and return False."""
    isfile = osp.isfile(fpath)
    if not isfile:
        warnings.warn(f'No file found at "{fpath}"')
    return isfile


def read_json(fpath: str) -> Any:
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj: Any, fpath: str) -> None:
    """Write ``obj`` as indented JSON, creating the parent folder."""
    mkdir_if_missing(osp.dirname(fpath))
    with open(fpath, "w") as f:
        json.dump(obj, f, indent=4, separators=(",", ": "))


def listdir_nohidden(path: str, sort: bool = False) -> List[str]:
    """Entries of ``path`` whose names do not start with a dot."""
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A seed that is a function of (run seed, epoch, sample index) only (63 bits, well mixed)."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@contextlib.contextmanager
def seeded_generators(seed: int) -> Iterator[None]:
    """Python's, NumPy's and torch's (CPU) global generators seeded with ``seed`` inside the block;
    their previous states are restored after it, so the surrounding random stream is untouched."""
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


def collect_env_info() -> str:
    """torch's environment report plus the Pillow version."""
    import PIL
    from torch.utils.collect_env import get_pretty_env_info

    env_str = get_pretty_env_info()
    env_str += f"\n        Pillow ({PIL.__version__})"
    return env_str
