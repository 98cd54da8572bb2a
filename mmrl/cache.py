"""Where the project keeps what it writes outside a run's output folder.

- ``cache_root()``: ``$MMRL_CACHE``, else ``~/.cache/mmrl`` (the miniature CLIP, caches of
  read-only dataset folders).
- ``dataset_cache_dir(cfg, dataset_dir)``: where a dataset's split files and few-shot caches are
  written: ``DATASET.CACHE_DIR/<dataset folder name>`` when set; else the dataset folder itself,
  as the lineage does; else, when that folder is read-only, a folder of its own under
  ``cache_root()/datasets``. Caches already in the dataset folder are read from there.
"""
import hashlib
import os
import os.path as osp
from typing import Any


def cache_root() -> str:
    return os.environ.get("MMRL_CACHE") or osp.join(osp.expanduser("~"), ".cache", "mmrl")


def dataset_cache_dir(cfg: Any, dataset_dir: str) -> str:
    dataset_dir = osp.abspath(dataset_dir)
    name = osp.basename(dataset_dir.rstrip(os.sep))
    chosen = cfg.DATASET.get("CACHE_DIR", "")
    if chosen:
        return osp.join(osp.abspath(osp.expanduser(chosen)), name)
    if os.access(dataset_dir, os.W_OK):
        return dataset_dir
    # One folder per dataset folder, so two read-only roots never share a cache.
    tag = hashlib.sha1(dataset_dir.encode("utf-8")).hexdigest()[:8]
    fallback = osp.join(cache_root(), "datasets", f"{name}-{tag}")
    print(f"The dataset folder {dataset_dir} is read-only: its caches go to {fallback} "
          "(set DATASET.CACHE_DIR to choose the folder)")
    return fallback
