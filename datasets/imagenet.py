"""ImageNet, and the helpers shared by the ImageNet family (V2, Sketch, A, R).

Layout under DATASET.ROOT::

    imagenet/
        classnames.txt            "<wnid> <class name>", 1000 lines
        images/train/<wnid>/*.JPEG
        images/val/<wnid>/*.JPEG  (one folder per class, not the flat 50,000-file download)
        preprocessed.pkl          written on the first run, read afterwards
        split_fewshot/            few-shot caches (train only)

Labels are the index of the wnid folder among the sorted folders of each split; the
validation set is the test set (and also the val split, as the lineage reports it).
"""
import os
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum, dump_datum_pickle, load_pickle
from mmrl.dassl.utils import atomic_write, listdir_nohidden
from mmrl.data.benchmark import DATASETS_DOC, BenchmarkDataset, DatasetLayout

IMAGENET_NUM_CLASSES = 1000
CLASSNAMES_FILE = "classnames.txt"
PREPROCESSED_FILE = "preprocessed.pkl"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_WNID = re.compile(r"n\d{8}")


def read_classnames(path: str, expected: int = IMAGENET_NUM_CLASSES) -> "OrderedDict[str, str]":
    """Read ``classnames.txt`` into {wnid: class name}, in file order.

    Each line is ``<wnid> <class name with spaces>``. The file order matters: ImageNetV2's
    folder ``i`` is the class on line ``i``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing. The ImageNet family needs this text file with {expected} lines "
            f"'<wnid> <class name>' (e.g. 'n01440764 tench'); see {DATASETS_DOC} for where to get it."
        )
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith(("{", "[")):
        raise ValueError(
            f"{path} looks like JSON (e.g. imagenet_class_index.json), but classnames.txt must be plain "
            f"text with one line '<wnid> <class name>' per class, e.g. 'n01440764 tench'; see {DATASETS_DOC}"
        )
    classnames: "OrderedDict[str, str]" = OrderedDict()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split(" ")
        wnid, name = parts[0], " ".join(parts[1:]).strip()
        if not _WNID.fullmatch(wnid) or not name:
            raise ValueError(
                f"{path}, line {lineno}: {raw!r} is not '<wnid> <class name>' (e.g. 'n01440764 tench'); "
                f"the first token must be a WordNet id like n01440764, followed by a space and the name"
            )
        if wnid in classnames:
            raise ValueError(f"{path}, line {lineno}: wnid {wnid} appears a second time")
        classnames[wnid] = name
    if len(classnames) != expected:
        raise ValueError(
            f"{path} has {len(classnames)} classes, expected {expected} (one line per ImageNet class); "
            f"see {DATASETS_DOC}"
        )
    return classnames


def _image_files(folder: str) -> List[str]:
    return [n for n in listdir_nohidden(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]


def _subfolders(folder: str) -> List[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def flat_folder_problem(folder: str) -> Optional[str]:
    """Explain a split folder that holds images directly instead of one sub-folder per wnid."""
    if not os.path.isdir(folder) or _subfolders(folder):
        return None
    images = _image_files(folder)
    if not images:
        return None
    return (
        f"{folder} holds {len(images)} images directly, but one sub-folder per class (wnid) is expected, "
        f"e.g. {os.path.join(folder, 'n01440764', images[0])}. The ImageNet validation download is flat: "
        f"move each image into the folder of its wnid (the usual valprep.sh script does this); "
        f"see {DATASETS_DOC}"
    )


def read_wnid_folders(
    image_dir: str, classnames: Dict[str, str], ignored: Sequence[str] = ()
) -> Tuple[List[Datum], List[str]]:
    """Items of a folder-per-wnid tree. Label = index of the wnid among the sorted sub-folders,
    so a tree with 200 classes (ImageNet-A, -R) has labels 0..199. Returns (items, wnids)."""
    problem = flat_folder_problem(image_dir)
    if problem:
        raise ValueError(problem)
    wnids = [w for w in _subfolders(image_dir) if w not in ignored]
    unknown = [w for w in wnids if w not in classnames]
    if unknown:
        raise ValueError(
            f"{image_dir} has sub-folder(s) {', '.join(unknown[:5])} that are not wnids listed in "
            f"{CLASSNAMES_FILE}; each sub-folder must be named by the wnid of its class"
        )
    items = []
    for label, wnid in enumerate(wnids):
        folder = os.path.join(image_dir, wnid)
        # listdir order, as the lineage: it fixes the few-shot draw, frozen once cached.
        for name in listdir_nohidden(folder):
            items.append(Datum(impath=os.path.join(folder, name), label=label, classname=classnames[wnid]))
    return items, wnids


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    display_name = "ImageNet"
    protocols = ("b2n",)
    sweep_rank, table_rank = 11, 1
    dataset_dir = "imagenet"
    template = "a photo of a {}."
    image_dir = "images"
    split_file = ""
    fewshot_val = False

    @classmethod
    def required_paths(cls, cfg) -> List[str]:
        folder = cls.folder(cfg)
        images = os.path.join(folder, cls.image_dir)
        return [folder, os.path.join(folder, CLASSNAMES_FILE), os.path.join(images, "train"),
                os.path.join(images, "val")]

    @classmethod
    def layout_problem(cls, cfg) -> Optional[str]:
        folder = cls.folder(cfg)
        for split in ("val", "train"):
            problem = flat_folder_problem(os.path.join(folder, cls.image_dir, split))
            if problem:
                return problem
        try:
            read_classnames(os.path.join(folder, CLASSNAMES_FILE))
        except ValueError as err:
            return str(err)
        return None

    def load_data(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        preprocessed = self.cached(PREPROCESSED_FILE)
        if os.path.exists(preprocessed):
            # load_pickle also reads the pickles Dassl wrote (they name Dassl's Datum class).
            data = load_pickle(preprocessed, root=self.dataset_dir)
            train, test = data["train"], data["test"]
        else:
            classnames = read_classnames(os.path.join(self.dataset_dir, CLASSNAMES_FILE))
            train, train_wnids = read_wnid_folders(os.path.join(self.image_dir, "train"), classnames)
            test, test_wnids = read_wnid_folders(os.path.join(self.image_dir, "val"), classnames)
            if train_wnids != test_wnids:
                # Labels are per-split folder indices: a class missing on one side shifts every later label.
                only_train = sorted(set(train_wnids) - set(test_wnids))
                only_val = sorted(set(test_wnids) - set(train_wnids))
                raise ValueError(
                    f"{os.path.join(self.image_dir, 'train')} and {os.path.join(self.image_dir, 'val')} must hold "
                    f"the same wnid folders; only in train: {only_train[:5]}, only in val: {only_val[:5]}"
                )
            atomic_write(preprocessed, lambda f: dump_datum_pickle({"train": train, "test": test}, f, self.dataset_dir))
        # The validation images are both the val and the test split, as in the lineage.
        return train, test, test


class ImageNetVariant(DatasetLayout, DatasetBase):
    """A test-only ImageNet variant: ``train_x = test =`` every image, no val split.

    Ignores NUM_SHOTS and SUBSAMPLE_CLASSES (the lineage evaluates them whole, cross-dataset).
    Subclasses name the folders and implement :meth:`read_items`.
    """

    dataset_dir: str = ""
    image_dir: str = ""
    split_file = ""
    # The variants are scored with ImageNet's prompt.
    template = ImageNet.template

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.dataset_dir = type(self).folder(cfg)
        if not os.path.isdir(self.dataset_dir):
            raise FileNotFoundError(
                f"{type(self).__name__}: dataset folder {self.dataset_dir} does not exist "
                f"(DATASET.ROOT={cfg.DATASET.ROOT!r}); see {DATASETS_DOC} for the expected layout"
            )
        self.image_dir = os.path.join(self.dataset_dir, type(self).image_dir)
        if not os.path.isdir(self.image_dir):
            raise FileNotFoundError(
                f"{type(self).__name__}: image folder {self.image_dir} does not exist; see {DATASETS_DOC}"
            )
        classnames = read_classnames(os.path.join(self.dataset_dir, CLASSNAMES_FILE))
        data = self.read_items(classnames)
        if not data:
            raise ValueError(f"{type(self).__name__}: no images found under {self.image_dir}")
        super().__init__(train_x=data, test=data)

    def read_items(self, classnames: "OrderedDict[str, str]") -> List[Datum]:
        raise NotImplementedError

    @classmethod
    def required_paths(cls, cfg) -> List[str]:
        folder = cls.folder(cfg)
        return [folder, os.path.join(folder, CLASSNAMES_FILE), os.path.join(folder, cls.image_dir)]

    @classmethod
    def layout_problem(cls, cfg) -> Optional[str]:
        folder = cls.folder(cfg)
        try:
            read_classnames(os.path.join(folder, CLASSNAMES_FILE))
        except ValueError as err:
            return str(err)
        return flat_folder_problem(os.path.join(folder, cls.image_dir))


class WnidFolderVariant(ImageNetVariant):
    """A variant stored as one folder per wnid (Sketch, A, R); labels index the sorted folders."""

    ignored: Tuple[str, ...] = ()

    def read_items(self, classnames: "OrderedDict[str, str]") -> List[Datum]:
        items, _ = read_wnid_folders(self.image_dir, classnames, ignored=self.ignored)
        return items
