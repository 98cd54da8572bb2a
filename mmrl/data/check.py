"""Check a data root before training: which datasets are present, missing or broken.

    python -m mmrl.data.check --root DATA [--dataset NAME ...] [--folder DIR]

Each dataset class knows its own layout (``required_paths`` and ``layout_problem``, from
:class:`mmrl.data.benchmark.DatasetLayout`, which the dataset base classes carry); this module is
only the command line above them: it iterates the registry, asks every class what it needs, and
builds the dataset without few-shot sampling to count classes and images per split. Exit code 0 when every dataset
asked for is present and readable, 1 otherwise.

Building a dataset is what the first training run does too, so the check leaves behind
what that run would: ImageNet's ``preprocessed.pkl``, the generic folder's split file and
the (empty) ``split_fewshot/`` folders.
"""
import argparse
import contextlib
import io
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmrl.cli import UserError, run_main
from mmrl.data.benchmark import DATASETS_DOC, DatasetLayout


@dataclass
class Report:
    name: str
    status: str  # "present" | "missing" | "broken"
    detail: str = ""
    # split name -> (number of classes, number of images)
    counts: Dict[str, Tuple[int, int]] = field(default_factory=dict)

    def line(self) -> str:
        if self.status == "present":
            parts = [f"{split} {n_img:,} images / {n_cls} classes" for split, (n_cls, n_img) in self.counts.items()]
            return f"[present] {self.name}: " + ", ".join(parts)
        return f"[{self.status}] {self.name}: {self.detail}"


def _split_counts(items: Optional[list]) -> Tuple[int, int]:
    items = items or []
    return len({item.label for item in items}), len(items)


def check_dataset(dataset_cls: type, cfg) -> Report:
    """Check one registered dataset class under ``cfg.DATASET.ROOT`` and count its splits."""
    name = dataset_cls.__name__
    try:
        required = dataset_cls.required_paths(cfg)
    except ValueError as err:  # the generic folder dataset without DATASET.FOLDER.DIR
        return Report(name, "missing", f"{err} (this command takes it as --folder)")
    for path in required:
        if not os.path.exists(path):
            return Report(name, "missing", f"{path} does not exist (see {DATASETS_DOC})")
    problem = dataset_cls.layout_problem(cfg)
    if problem:
        return Report(name, "broken", problem)

    run_cfg = cfg.clone()
    run_cfg.defrost()
    run_cfg.DATASET.NAME = name
    run_cfg.DATASET.NUM_SHOTS = 0
    run_cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    run_cfg.freeze()
    # Building prints the lineage's progress lines; the report is the output here.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            dataset = dataset_cls(run_cfg)
    except (OSError, ValueError, KeyError, AssertionError) as err:
        return Report(name, "broken", f"{type(err).__name__}: {err}")
    counts = {"train": _split_counts(dataset.train_x)}
    if dataset.val:
        counts["val"] = _split_counts(dataset.val)
    counts["test"] = _split_counts(dataset.test)
    return Report(name, "present", counts=counts)


def checkable_datasets() -> Dict[str, type]:
    """Every registered dataset class that describes its layout, by registry name."""
    try:
        import datasets  # noqa: F401  (registers every dataset module of the repository)
    except ImportError as err:
        raise UserError(
            "cannot import the repository's `datasets` package; run the check from the repository root "
            f"(python -m mmrl.data.check ...): {err}"
        ) from err
    from mmrl.dassl.data.datasets import DATASET_REGISTRY

    found = {}
    for name in DATASET_REGISTRY.registered_names():
        cls = DATASET_REGISTRY.get(name)
        if isinstance(cls, type) and issubclass(cls, DatasetLayout):
            found[name] = cls
    return found


def configs_with_data(root: str, config_files: Sequence[str]) -> List[str]:
    """Of the dataset config files given, those whose dataset has every required path under
    ``root`` (the sweeps use this to skip datasets that are not on disk). A registered dataset
    that describes no layout, like the generated demo, needs nothing."""
    from mmrl.dassl.config import get_cfg_default, merge_from_file_checked
    from mmrl.dassl.data.datasets import DATASET_REGISTRY

    checkable_datasets()  # registers the repository's datasets
    present = []
    for path in config_files:
        cfg = get_cfg_default()
        merge_from_file_checked(cfg, path)
        cfg.DATASET.ROOT = root
        cls = DATASET_REGISTRY.get(cfg.DATASET.NAME)
        if not issubclass(cls, DatasetLayout) or all(os.path.exists(p) for p in cls.required_paths(cfg)):
            present.append(path)
    return present


def _main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mmrl.data.check",
        description="Report which benchmark datasets under a data root are present, missing or broken.",
    )
    parser.add_argument("--root", required=True, help="the data root (DATASET.ROOT)")
    parser.add_argument(
        "--dataset", nargs="+", default=None, metavar="NAME",
        help="registry names to check (default: the datasets of the protocols, the 15 of the benchmark)",
    )
    parser.add_argument(
        "--folder", default="",
        help="DATASET.FOLDER.DIR for the generic ImageFolder dataset (relative to --root)",
    )
    parser.add_argument(
        "--classnames", default="", help="DATASET.FOLDER.CLASSNAMES for the generic ImageFolder dataset",
    )
    parser.add_argument(
        "--present-configs", nargs="+", default=None, metavar="YAML",
        help="only print those of these dataset config files whose data are under --root, one a line",
    )
    args = parser.parse_args(argv)
    if os.path.exists(args.root) and not os.path.isdir(args.root):
        raise UserError(f"--root {args.root} is a file: give the folder that holds the datasets (DATASET.ROOT)")

    if args.present_configs:
        for path in configs_with_data(args.root, args.present_configs):
            print(path)
        return 0

    available = checkable_datasets()
    if args.dataset:
        unknown = [n for n in args.dataset if n not in available]
        if unknown:
            parser.error(
                f"unknown dataset name(s) {', '.join(unknown)}; choose from {', '.join(sorted(available))}"
            )
        names = list(args.dataset)
    else:
        names = [n for n, cls in available.items() if cls.protocols]  # the benchmark's

    from mmrl.dassl.config import get_cfg_default

    cfg = get_cfg_default()
    cfg.DATASET.ROOT = args.root
    cfg.DATASET.FOLDER.DIR = args.folder
    cfg.DATASET.FOLDER.CLASSNAMES = args.classnames

    print(f"Data root: {os.path.abspath(os.path.expanduser(args.root))}")
    reports = [check_dataset(available[name], cfg) for name in names]
    for report in reports:
        print(report.line())
    n_ok = sum(r.status == "present" for r in reports)
    print(f"{n_ok} of {len(reports)} datasets present. Download instructions: {DATASETS_DOC}")
    return 0 if n_ok == len(reports) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit codes: 0 every dataset asked for is present, 1 some are not (or an error, one line), 2 bad arguments."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
