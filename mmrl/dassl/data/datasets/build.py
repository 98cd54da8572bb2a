from typing import Any, Optional

from mmrl.dassl.utils import Registry

from .base_dataset import DatasetBase


class DatasetRegistry(Registry):
    """The dataset registry: a class must declare the prompt template of its classes to register,
    so that no dataset is silently prompted with another's (or a generic) template."""

    def _do_register(self, name: str, obj: Any, force: bool = False) -> None:
        template: Optional[str] = getattr(obj, "template", None)
        if not isinstance(template, str) or "{}" not in template:
            raise TypeError(
                f"dataset {name} ({getattr(obj, '__module__', '?')}) declares no prompt template: give the class "
                "template = 'a photo of a {}.' (its classes' prompt; {} is the class name)"
            )
        super()._do_register(name, obj, force)


DATASET_REGISTRY = DatasetRegistry("DATASET")


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
