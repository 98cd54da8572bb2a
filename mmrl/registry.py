"""What the registries hold, for the protocol scripts and the table parser.

    python -m mmrl.registry datasets --protocol b2n [xd dg ...]   # one line per protocol
    python -m mmrl.registry datasets --protocol b2n --order table --display
    python -m mmrl.registry trainers

A dataset is its class (``datasets/<name>.py``, which declares its template, display name,
protocols and ranks) and its YAML (``configs/datasets/<name>.yaml``, whose file name is the
dataset's name in scripts and output folders). Datasets kept outside the repository live in the
folders of ``MMRL_DATASETS_PATH`` (separated by ``:``), each holding ``<name>.py`` and
``<name>.yaml`` side by side: ``import datasets`` (train.py, the checker, this query) imports
them too, and the scripts look for their YAML there.
"""
import argparse
import importlib
import importlib.util
import os
import sys
from typing import Dict, List, Optional, Sequence

import yaml

from mmrl.cli import UserError, run_main

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET_CONFIGS = os.path.join(REPO_ROOT, "configs", "datasets")
PATH_VARIABLE = "MMRL_DATASETS_PATH"
# base-to-novel and few-shot benchmark, cross-dataset target, domain-generalisation target.
PROTOCOLS = ("b2n", "xd", "dg")
ORDERS = ("sweep", "table")
_PLUGIN_PACKAGE = "mmrl_datasets_path"


def plugin_folders() -> List[str]:
    """The folders of ``MMRL_DATASETS_PATH``, in order."""
    return [f for f in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if f]


def import_plugin_datasets() -> None:
    """Import every ``.py`` of the ``MMRL_DATASETS_PATH`` folders (their classes register themselves)."""
    for folder in plugin_folders():
        if not os.path.isdir(folder):
            raise UserError(f"{PATH_VARIABLE} names {folder}, which is not a folder")
        for name in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(name)
            module = f"{_PLUGIN_PACKAGE}.{stem}"
            if ext != ".py" or name.startswith("_") or module in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(module, os.path.join(folder, name))
            sys.modules[module] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(sys.modules[module])


def dataset_configs() -> Dict[str, str]:
    """Dataset name (YAML stem) -> its YAML: the repository's, then those of ``MMRL_DATASETS_PATH``."""
    found: Dict[str, str] = {}
    for folder in [DATASET_CONFIGS, *plugin_folders()]:
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(name)
            if ext == ".yaml":
                found.setdefault(stem, os.path.join(folder, name))
    return found


def _registry_name(path: str) -> Optional[str]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return (data.get("DATASET") or {}).get("NAME") if isinstance(data, dict) else None


def dataset_classes() -> Dict[str, type]:
    """Dataset name (YAML stem) -> its registered class, for every YAML naming a registered dataset."""
    import datasets  # noqa: F401  (registers the repository's datasets and those of MMRL_DATASETS_PATH)
    from mmrl.dassl.data.datasets import DATASET_REGISTRY

    out = {}
    for stem, path in dataset_configs().items():
        name = _registry_name(path)
        if name and name in DATASET_REGISTRY:
            out[stem] = DATASET_REGISTRY.get(name)
    return out


def display_name(stem: str, cls: type) -> str:
    """The name a dataset has in the tables: the one it declares, else its name in the scripts."""
    return getattr(cls, "display_name", "") or stem


def protocol_datasets(protocol: str, order: str = "sweep") -> List[str]:
    """The dataset names of a protocol, in the sweeps' order (small datasets first, as the lineage
    runs them) or the papers' tables' order."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if order not in ORDERS:
        raise UserError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    members = [(stem, cls) for stem, cls in dataset_classes().items() if protocol in getattr(cls, "protocols", ())]
    rank = "sweep_rank" if order == "sweep" else "table_rank"
    return [stem for stem, cls in sorted(members, key=lambda m: (getattr(m[1], rank), m[0]))]


def trainer_names() -> List[str]:
    """The registered trainers in the tables' order: each trainer's ``table_rank`` (the papers' order,
    baselines first), then the order their modules register them."""
    import trainers  # noqa: F401  (registers the repository's trainers)
    from mmrl.dassl.engine import TRAINER_REGISTRY

    names = TRAINER_REGISTRY.registered_names()
    return sorted(names, key=lambda n: getattr(TRAINER_REGISTRY.get(n), "table_rank", len(names)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmrl.registry", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ds = sub.add_parser("datasets", help="the dataset names of protocols, one line per protocol")
    ds.add_argument("--protocol", nargs="+", choices=PROTOCOLS, required=True)
    ds.add_argument("--order", choices=ORDERS, default="sweep")
    ds.add_argument("--display", action="store_true", help="one 'name<TAB>display name' line per dataset instead")
    sub.add_parser("trainers", help="the registered trainers, one a line")
    args = parser.parse_args(argv)
    if args.what == "trainers":
        print("\n".join(trainer_names()))
        return 0
    classes = dataset_classes()
    for protocol in args.protocol:
        names = protocol_datasets(protocol, args.order)
        if args.display:
            print("".join(f"{n}\t{display_name(n, classes[n])}\n" for n in names), end="")
        else:
            print(" ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
