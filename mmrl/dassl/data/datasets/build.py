from mmrl.dassl.utils import Registry

from .base_dataset import DatasetBase

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg) -> DatasetBase:
    """Instantiate the dataset registered under ``cfg.DATASET.NAME``."""
    name = cfg.DATASET.NAME
    if not name:
        raise ValueError(
            "DATASET.NAME is empty: pass --dataset-config-file configs/datasets/<dataset>.yaml "
            "or set DATASET.NAME"
        )
    dataset_cls = DATASET_REGISTRY.get(name)
    if cfg.VERBOSE:
        print(f"Loading dataset: {name}")
    return dataset_cls(cfg)
