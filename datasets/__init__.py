"""The registered datasets: importing this package imports every module in
this folder (except those starting with "_"), so adding a dataset is adding
one file; then those of the MMRL_DATASETS_PATH folders (see mmrl.registry)."""
import importlib
import pkgutil

from mmrl.registry import import_plugin_datasets

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
import_plugin_datasets()
