"""What every benchmark dataset of the lineage shares, written once.

The split JSON files, the few-shot cache and the base/new class subsampling
follow the CoOp lineage exactly, so that split files and ``split_fewshot``
pickles made by the lineage are read unchanged and the same seeds select the
same images.
"""
import json
import math
import os
import os.path as osp
import pickle
import random
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from mmrl.cache import dataset_cache_dir
from mmrl.dassl.data.datasets import (
    DatasetBase,
    Datum,
    dump_datum_pickle,
    generate_fewshot_dataset,
    load_pickle,
    report_short_classes,
)
from mmrl.dassl.utils import atomic_write, listdir_nohidden, mkdir_if_missing, read_json
from mmrl.registry import PROTOCOLS

__all__ = [
    "DATASETS_DOC",
    "BenchmarkDataset",
    "DatasetLayout",
    "draw_split",
    "load_or_create_fewshot",
    "read_text_lines",
    "read_and_split_data",
    "read_split",
    "save_split",
    "split_trainval",
    "subsample_classes",
]

Split = Tuple[List[Datum], List[Datum], List[Datum]]
T = TypeVar("T")

DATASETS_DOC = "DATASETS.md"


def read_text_lines(path: str, what: str) -> List[Tuple[int, str]]:
    """Non-empty stripped lines of a dataset's text file with their 1-based line numbers;
    a missing file is reported with what it is and where the instructions are."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"{path} is missing ({what}); see {DATASETS_DOC} for the expected layout")
    with open(path, encoding="utf-8") as f:
        lines = [(n, line.strip()) for n, line in enumerate(f, start=1)]
    return [(n, line) for n, line in lines if line]


class DatasetLayout:
    """What a dataset class tells the data-root checker (``python -m mmrl.data.check``) about its
    files. Carried by the dataset base classes (BenchmarkDataset, ImageNet's variants); the
    defaults fit the datasets whose split comes from a ``split_zhou_*.json`` file next to an
    image folder, and the others override them."""

    # Set by the dataset class (the benchmark base class gives the defaults).
    dataset_dir: str
    image_dir: str
    split_file: str
    # What the scripts, the table parser and the checker ask the registry (mmrl.registry): the
    # name in the papers' tables ("" for the registry name), the protocols the dataset belongs to
    # (of mmrl.registry.PROTOCOLS; the checker looks at these datasets unless given others), and
    # its place in the sweeps (the lineage runs small datasets first) and in the tables.
    display_name: str = ""
    protocols: Tuple[str, ...] = ()
    sweep_rank: int = 1000
    table_rank: int = 1000

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = sorted(set(cls.protocols) - set(PROTOCOLS))
        if unknown or isinstance(cls.protocols, str):
            raise TypeError(f"{cls.__name__}.protocols {cls.protocols!r}: give a tuple of {', '.join(PROTOCOLS)}")

    @classmethod
    def required_paths(cls, cfg) -> List[str]:
        """Paths that must exist under ``cfg.DATASET.ROOT`` before the dataset can be built, in
        the order the checker reports the first missing one."""
        folder = cls.folder(cfg)
        paths = [folder, osp.join(folder, cls.image_dir)]
        if getattr(cls, "split_file", ""):
            paths.append(osp.join(folder, cls.split_file))
        return paths

    @classmethod
    def layout_problem(cls, cfg) -> Optional[str]:
        """A known broken layout, explained, or None. Only called once every required path exists."""
        return None


def read_split(filepath: str, path_prefix: str) -> Split:
    """Read a split JSON ``{"train"|"val"|"test": [[relpath, label, classname], ...]}``."""
    print(f"Reading split from {filepath}")
    try:
        split = read_json(filepath)
    except json.JSONDecodeError as e:
        raise ValueError(f"Split file {filepath} is not valid JSON ({e}); delete it or download it again") from e
    if not isinstance(split, dict):
        raise ValueError(f"Split file {filepath} must hold a JSON object with keys train, val, test")

    def _convert(key: str) -> List[Datum]:
        if key not in split:
            raise ValueError(f"Split file {filepath} has no {key!r} list (keys: {sorted(split)})")
        out = []
        for i, entry in enumerate(split[key]):
            if not isinstance(entry, (list, tuple)) or len(entry) != 3:
                raise ValueError(
                    f"Split file {filepath}: {key}[{i}] = {entry!r} is not [relpath, label, classname]"
                )
            relpath, label, classname = entry
            try:
                label = int(label)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Split file {filepath}: {key}[{i}] = {entry!r} has label {label!r}, which is not an integer"
                ) from None
            if label < 0:
                raise ValueError(f"Split file {filepath}: {key}[{i}] = {entry!r} has a negative label {label}")
            out.append(Datum(impath=osp.join(path_prefix, relpath), label=label, classname=classname))
        return out

    return _convert("train"), _convert("val"), _convert("test")


def save_split(
    train: Sequence[Datum], val: Sequence[Datum], test: Sequence[Datum], filepath: str, path_prefix: str
) -> None:
    """Write a split JSON with paths relative to ``path_prefix`` (indent 4, as the lineage).

    The file is written to a temporary name and renamed, so an interrupted
    write never leaves a truncated split that later runs would trust.
    """
    prefix = path_prefix.rstrip("/")

    def _extract(items: Sequence[Datum]) -> List[Tuple[str, int, str]]:
        out = []
        for item in items:
            impath = item.impath
            if prefix and not impath.startswith(prefix):
                raise ValueError(f"Cannot save {impath} to {filepath}: it is not under {path_prefix}")
            relpath = impath[len(prefix):]
            if relpath.startswith("/"):
                relpath = relpath[1:]
            out.append((relpath, item.label, item.classname))
        return out

    split = {"train": _extract(train), "val": _extract(val), "test": _extract(test)}
    text = json.dumps(split, indent=4, separators=(",", ": "))
    atomic_write(filepath, lambda f: f.write(text.encode("utf-8")))
    print(f"Saved split to {filepath}")


def draw_split(items: List[T], fractions: Sequence[float], rng: Any = random) -> List[List[T]]:
    """One class's items shuffled in place with ``rng`` (the global ``random`` by default, as the
    lineage draws), then cut into consecutive parts of ``round(n * f)`` items for each fraction,
    and the rest as the last part: the per-class split every dataset draws."""
    rng.shuffle(items)
    parts, start = [], 0
    for fraction in fractions:
        count = round(len(items) * fraction)
        parts.append(items[start:start + count])
        start += count
    parts.append(items[start:])
    return parts


def split_trainval(trainval: Sequence[Datum], p_val: float = 0.2) -> Tuple[List[Datum], List[Datum]]:
    """Per label (first-appearance order), shuffle with the global ``random`` and move
    ``round(n * p_val)`` items to val."""
    p_trn = 1 - p_val
    print(f"Splitting trainval into {p_trn:.0%} train and {p_val:.0%} val")
    tracker: Dict[int, List[int]] = defaultdict(list)
    for idx, item in enumerate(trainval):
        tracker[item.label].append(idx)

    train, val = [], []
    for label, idxs in tracker.items():
        val_idxs, train_idxs = draw_split(idxs, (p_val,))
        if not val_idxs:
            raise ValueError(
                f"Label {label} has {len(idxs)} train+val items: too few to hold out {p_val:.0%} for val"
            )
        val.extend(trainval[i] for i in val_idxs)
        train.extend(trainval[i] for i in train_idxs)
    return train, val


def read_and_split_data(
    image_dir: str,
    p_trn: float = 0.5,
    p_val: float = 0.2,
    ignored: Iterable[str] = (),
    new_cnames: Optional[Dict[str, str]] = None,
) -> Split:
    """Split a ``<image_dir>/<category>/<image>`` tree per category into train/val/test.

    Labels follow the sorted category names. Images are taken in directory
    listing order and shuffled with the global ``random``, as the lineage does
    (so the result depends on the filesystem's listing order; the published
    split files freeze it).
    """
    ignored = set(ignored)
    if not osp.isdir(image_dir):
        raise FileNotFoundError(f"Image folder {image_dir} does not exist")
    categories = sorted(
        c for c in listdir_nohidden(image_dir) if c not in ignored and osp.isdir(osp.join(image_dir, c))
    )
    p_tst = 1 - p_trn - p_val
    print(f"Splitting into {p_trn:.0%} train, {p_val:.0%} val, and {p_tst:.0%} test")

    train, val, test = [], [], []
    for label, category in enumerate(categories):
        category_dir = osp.join(image_dir, category)
        images = [osp.join(category_dir, im) for im in listdir_nohidden(category_dir)]
        parts = draw_split(images, (p_trn, p_val))
        if not all(parts):
            raise ValueError(
                f"Category folder {category_dir} has {len(images)} images: too few for a "
                f"{p_trn:.0%}/{p_val:.0%}/{p_tst:.0%} split (got {'/'.join(str(len(p)) for p in parts)})"
            )
        classname = category
        if new_cnames is not None and category in new_cnames:
            classname = new_cnames[category]
        for split, paths in zip((train, val, test), parts):
            split.extend(Datum(impath=p, label=label, classname=classname) for p in paths)
    return train, val, test


def subsample_classes(*datasets: Sequence[Datum], subsample: str = "all"):
    """Keep the base (first ceil(n/2)) or new (remaining) classes of the first dataset.

    Labels are remapped to 0..m-1 in the order of the selected labels; items are
    rebuilt as new Datum objects (domain 0). ``"all"`` returns the inputs unchanged
    (as a tuple); otherwise a list with one list per input.
    """
    if subsample not in ("all", "base", "new"):
        raise ValueError(
            f"DATASET.SUBSAMPLE_CLASSES must be one of 'all', 'base', 'new', got {subsample!r}"
        )
    if subsample == "all":
        return datasets

    labels = sorted({item.label for item in datasets[0]})
    m = math.ceil(len(labels) / 2)
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabeler = {y: y_new for y_new, y in enumerate(selected)}

    output = []
    for dataset in datasets:
        if dataset is None:  # an absent val split stays absent
            output.append(None)
            continue
        output.append(
            [
                Datum(impath=item.impath, label=relabeler[item.label], classname=item.classname)
                for item in dataset
                if item.label in relabeler
            ]
        )
    return output


def load_or_create_fewshot(
    split_fewshot_dir: str,
    num_shots: int,
    seed: int,
    train: Sequence[Datum],
    val: Optional[Sequence[Datum]] = None,
    root: Optional[str] = None,
    also_read: Sequence[str] = (),
) -> Tuple[List[Datum], Optional[List[Datum]]]:
    """The ``split_fewshot/shot_{K}-seed_{S}.pkl`` cache.

    If the file exists (in ``split_fewshot_dir`` or one of ``also_read``, these first) it is
    loaded and nothing is drawn (pickles written by Dassl load too; their image paths are taken
    relative to the dataset folder ``root``, default the folder above ``split_fewshot_dir``).
    Otherwise train is drawn with K shots, then val with min(K, 4), from the same global
    ``random`` stream, and both are saved into ``split_fewshot_dir``. With ``val=None``
    (ImageNet) only train is drawn and cached, and None is returned for val.
    """
    name = f"shot_{num_shots}-seed_{seed}.pkl"
    root = root or osp.dirname(osp.abspath(split_fewshot_dir))
    path = osp.join(split_fewshot_dir, name)
    for folder in (*also_read, split_fewshot_dir):
        if osp.exists(osp.join(folder, name)):
            path = osp.join(folder, name)
            break
    if osp.exists(path):
        print(f"Loading preprocessed few-shot data from {path}")
        data = load_pickle(path, root=root)
        if not isinstance(data, dict) or "train" not in data or (val is not None and "val" not in data):
            expected = "train and val" if val is not None else "train"
            raise ValueError(
                f"Few-shot cache {path} does not hold {expected} lists; delete it and it will be redrawn"
            )
        report_short_classes(data["train"], num_shots, "train")
        if val is not None:
            report_short_classes(data["val"], min(num_shots, 4), "val")
        return data["train"], (data["val"] if val is not None else None)

    train = generate_fewshot_dataset(train, num_shots=num_shots)
    data = {"train": train}
    if val is not None:
        val = generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
        data["val"] = val
    print(f"Saving preprocessed few-shot data to {path}")
    atomic_write(path, lambda f: dump_datum_pickle(data, f, root))
    return train, val


class BenchmarkDataset(DatasetLayout, DatasetBase):
    """The common flow of the lineage's benchmark datasets.

    split file -> few-shot cache (before subsampling, so all/base/new runs share
    it) -> base/new subsampling. Subclasses set the class attributes and
    override :meth:`load_data` or :meth:`create_split` when their raw layout
    needs it.
    """

    dataset_dir: str = ""
    image_dir: str = "images"
    split_file: str = ""
    split_prefix: str = "image"
    fewshot_val: bool = True

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        name = type(self).__name__
        self.dataset_dir = type(self).folder(cfg)
        if not osp.isdir(self.dataset_dir):
            raise FileNotFoundError(
                f"Dataset {name}: folder {self.dataset_dir} does not exist. Set DATASET.ROOT to the folder "
                f"that contains '{osp.basename(self.dataset_dir)}/' and prepare the data as described in DATASETS.md."
            )
        self.image_dir = osp.join(self.dataset_dir, type(self).image_dir)
        # Caches are read from the dataset folder and written where they can be (see mmrl.cache).
        self.cache_dir = dataset_cache_dir(cfg, self.dataset_dir)
        self.split_path = self.cached(type(self).split_file)
        self.split_fewshot_dir = osp.join(self.cache_dir, "split_fewshot")
        mkdir_if_missing(self.split_fewshot_dir)

        train, val, test = self.load_data()

        num_shots = cfg.DATASET.NUM_SHOTS
        if num_shots >= 1:
            shared = osp.join(self.dataset_dir, "split_fewshot")
            kwargs = dict(root=self.dataset_dir, also_read=[shared] if shared != self.split_fewshot_dir else [])
            if type(self).fewshot_val:
                train, val = load_or_create_fewshot(self.split_fewshot_dir, num_shots, cfg.SEED, train, val,
                                                    **kwargs)
            else:
                train, _ = load_or_create_fewshot(self.split_fewshot_dir, num_shots, cfg.SEED, train, None,
                                                  **kwargs)

        train, val, test = subsample_classes(train, val, test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES)

        for split_name, items in (("train", train), ("test", test)):
            if not items:
                raise ValueError(
                    f"Dataset {name}: the {split_name} split is empty (split file {self.split_path}). "
                    "Check that the split file matches the images under DATASET.ROOT."
                )
        super().__init__(train_x=train, val=val, test=test)

    def cached(self, name: str) -> str:
        """Path of a file the dataset writes once and reads afterwards (a split file, a pickle):
        in the dataset folder if it is there (the lineage's place), else in the cache folder."""
        in_dataset = osp.join(self.dataset_dir, name)
        if osp.exists(in_dataset) or self.cache_dir == self.dataset_dir:
            return in_dataset
        return osp.join(self.cache_dir, name)

    @property
    def path_prefix(self) -> str:
        """The folder that split-file paths are relative to."""
        if type(self).split_prefix == "image":
            return self.image_dir
        if type(self).split_prefix == "dataset":
            return self.dataset_dir
        raise ValueError(
            f"{type(self).__name__}.split_prefix must be 'image' or 'dataset', got {type(self).split_prefix!r}"
        )

    def load_data(self) -> Split:
        if osp.exists(self.split_path):
            return read_split(self.split_path, self.path_prefix)
        train, val, test = self.create_split()
        save_split(train, val, test, self.split_path, self.path_prefix)
        return train, val, test

    def require_raw_files(self, relpaths: Sequence[str]) -> None:
        """Before drawing a new split from the raw files: when they are missing too, say first
        that the published split file is missing, since that is what the benchmark needs."""
        for relpath in relpaths:
            path = osp.join(self.dataset_dir, relpath)
            if osp.isfile(path) or (osp.isdir(path) and os.listdir(path)):
                continue
            raise FileNotFoundError(
                f"{type(self).__name__}: split file {self.split_path} not found, and {path} (needed to draw "
                f"a new split instead) is missing or empty. Download {osp.basename(self.split_path)} into "
                f"{self.dataset_dir} as described in {DATASETS_DOC}; the published split keeps results comparable."
            )

    def create_split(self) -> Split:
        raise FileNotFoundError(
            f"Dataset {type(self).__name__}: split file {self.split_path} not found. Download "
            f"{type(self).split_file} into {self.dataset_dir} (links in DATASETS.md)."
        )
