"""Your own images: one sub-folder of images per class.

    <DATASET.ROOT>/<DATASET.FOLDER.DIR>/
        <class_a>/*.jpg
        <class_b>/*.png
        classnames.txt            optional, lines "<folder> <class name>" (DATASET.FOLDER.CLASSNAMES)
        split_image_folder.json   written on first use, read afterwards
        split_fewshot/            few-shot caches

The split is drawn once per class (P_TRAIN / P_VAL / rest) with its own generator seeded by
DATASET.FOLDER.SPLIT_SEED, so every run seed sees the same split; few-shot sampling and
base/new subsampling then work as for the benchmark datasets. Delete the split file to draw
it again (e.g. after adding images or renaming classes).
"""
import json
import os
import random
from typing import Dict, List, Optional, Tuple

from mmrl.dassl.data.datasets import DATASET_REGISTRY, Datum, dataset_path
from mmrl.dassl.utils import listdir_nohidden
from mmrl.data.benchmark import DATASETS_DOC, BenchmarkDataset, draw_split, read_text_lines

SPLIT_FILE = "split_image_folder.json"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Folders this dataset writes next to the class folders; never classes.
_RESERVED = ("split_fewshot",)


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def data_folder(cfg) -> str:
    """The data folder of the generic dataset, ``<DATASET.ROOT>/<DATASET.FOLDER.DIR>``."""
    if not cfg.DATASET.FOLDER.DIR:
        raise ValueError(
            "DATASET.FOLDER.DIR is empty: set it to the folder (relative to DATASET.ROOT, or absolute) "
            f"that holds one sub-folder of images per class; see {DATASETS_DOC}"
        )
    return dataset_path(cfg, cfg.DATASET.FOLDER.DIR)


def scan_class_folders(folder: str) -> List[Tuple[str, List[str]]]:
    """(class folder, sorted image file names) for every class sub-folder, sorted by folder name."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"ImageFolder: data folder {folder} does not exist (DATASET.FOLDER.DIR)")
    classes = []
    for name in sorted(listdir_nohidden(folder)):
        path = os.path.join(folder, name)
        if name in _RESERVED or not os.path.isdir(path):
            continue
        images = sorted(f for f in listdir_nohidden(path) if is_image_file(f) and os.path.isfile(os.path.join(path, f)))
        if not images:
            raise ValueError(
                f"ImageFolder: class folder {path} holds no images (extensions: {', '.join(IMAGE_EXTENSIONS)}); "
                "add images or remove the folder"
            )
        classes.append((name, images))
    if not classes:
        raise ValueError(
            f"ImageFolder: {folder} has no class sub-folders; put the images of each class in a sub-folder "
            "named after the class"
        )
    return classes


def read_classname_file(path: str, folders: List[str]) -> Dict[str, str]:
    """{folder: class name} from lines ``<folder> <class name>``; every class folder must be listed."""
    names: Dict[str, str] = {}
    for lineno, line in read_text_lines(path, "DATASET.FOLDER.CLASSNAMES"):
        folder, _, name = line.partition(" ")
        name = name.strip()
        if not name:
            raise ValueError(f"{path}, line {lineno}: {line!r} is not '<folder> <class name>'")
        if folder not in folders:
            raise ValueError(
                f"{path}, line {lineno}: {folder!r} is not a class folder (folders: {', '.join(folders[:10])})"
            )
        names[folder] = name
    missing = [f for f in folders if f not in names]
    if missing:
        raise ValueError(f"{path} gives no class name for the folder(s) {', '.join(missing[:10])}")
    return names


def classnames_path(cfg, folder: str) -> Optional[str]:
    path = cfg.DATASET.FOLDER.CLASSNAMES
    if not path:
        return None
    return os.path.join(folder, os.path.expanduser(path))  # an absolute path stays absolute


@DATASET_REGISTRY.register()
class ImageFolder(BenchmarkDataset):
    image_dir = ""
    split_file = SPLIT_FILE
    # DATASET.FOLDER.TEMPLATE's default; each instance takes the configured one.
    template = "a photo of a {}."

    @classmethod
    def folder(cls, cfg) -> str:
        return data_folder(cfg)

    def __init__(self, cfg) -> None:
        folder_cfg = cfg.DATASET.FOLDER
        if "{}" not in folder_cfg.TEMPLATE:
            raise ValueError(
                f"DATASET.FOLDER.TEMPLATE {folder_cfg.TEMPLATE!r} has no '{{}}' where the class name goes, "
                "e.g. 'a photo of a {}.'"
            )
        if not (0 < folder_cfg.P_TRAIN < 1 and 0 <= folder_cfg.P_VAL < 1 and folder_cfg.P_TRAIN + folder_cfg.P_VAL < 1):
            raise ValueError(
                f"DATASET.FOLDER.P_TRAIN={folder_cfg.P_TRAIN} and P_VAL={folder_cfg.P_VAL} must be fractions "
                "with P_TRAIN > 0 and P_TRAIN + P_VAL < 1 (the rest is the test split)"
            )
        super().__init__(cfg)
        self.template = folder_cfg.TEMPLATE

    @classmethod
    def required_paths(cls, cfg) -> List[str]:
        return [data_folder(cfg)]

    @classmethod
    def layout_problem(cls, cfg) -> Optional[str]:
        folder = data_folder(cfg)
        try:
            classes = scan_class_folders(folder)
            names_file = classnames_path(cfg, folder)
            if names_file:
                read_classname_file(names_file, [c for c, _ in classes])
        except (OSError, ValueError) as err:
            return str(err)
        return None

    def load_data(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        # Compared before its items are read: an item of a removed folder would fail as a lone file.
        problem = self.split_mismatch(self.split_path) if os.path.isfile(self.split_path) else ""
        if problem:
            raise ValueError(
                f"ImageFolder: the saved split {self.split_path} no longer matches {self.dataset_dir}: {problem}. "
                f"To draw a new split, delete {self.split_path} and the few-shot caches in {self.split_fewshot_dir} "
                "(results are then not comparable with runs on the old split)"
            )
        return super().load_data()

    def split_mismatch(self, split_path: str) -> str:
        """What differs between a saved split and the folder as it is now ("" when nothing): class
        folders added or removed, or class names other than DATASET.FOLDER.CLASSNAMES gives."""
        try:
            with open(split_path, encoding="utf-8") as f:
                entries = [e for part in json.load(f).values() for e in part]
            saved: Dict[str, str] = {}
            for relpath, _, classname in entries:
                saved.setdefault(relpath.replace("\\", "/").split("/")[0], classname)
        except (OSError, ValueError, TypeError, AttributeError):
            return ""  # a damaged split file is reported, naming the file, where it is read
        folders = [c for c, _ in scan_class_folders(self.dataset_dir)]
        names_file = classnames_path(self.cfg, self.dataset_dir)
        names = read_classname_file(names_file, folders) if names_file else {}
        now = {c: names.get(c, c) for c in folders}
        problems = []
        added, removed = sorted(set(now) - set(saved)), sorted(set(saved) - set(now))
        if added:
            problems.append(f"class folders added since: {', '.join(added)}")
        if removed:
            problems.append(f"class folders in the split but gone: {', '.join(removed)}")
        renamed = [c for c in sorted(set(now) & set(saved)) if now[c] != saved[c]]
        if renamed:
            shown = ", ".join(f"{c!r} is {saved[c]!r} in the split, {now[c]!r} now" for c in renamed[:5])
            more = f" and {len(renamed) - 5} more" if len(renamed) > 5 else ""
            problems.append(f"class names differ (DATASET.FOLDER.CLASSNAMES): {shown}{more}")
        return "; ".join(problems)

    def create_split(self) -> Tuple[List[Datum], List[Datum], List[Datum]]:
        folder_cfg = self.cfg.DATASET.FOLDER
        classes = scan_class_folders(self.dataset_dir)
        names_file = classnames_path(self.cfg, self.dataset_dir)
        names = read_classname_file(names_file, [c for c, _ in classes]) if names_file else {}
        # Its own generator: the split must not depend on (or disturb) the run seed's stream.
        rng = random.Random(folder_cfg.SPLIT_SEED)
        print(
            f"Drawing a fixed split of {self.dataset_dir} ({folder_cfg.P_TRAIN:.0%} train, "
            f"{folder_cfg.P_VAL:.0%} val, rest test per class; DATASET.FOLDER.SPLIT_SEED={folder_cfg.SPLIT_SEED})"
        )
        train, val, test = [], [], []
        for label, (class_folder, images) in enumerate(classes):
            parts = draw_split(images, (folder_cfg.P_TRAIN, folder_cfg.P_VAL), rng)
            if not parts[0] or not parts[2]:
                raise ValueError(
                    f"ImageFolder: class folder {os.path.join(self.dataset_dir, class_folder)} has {len(images)} "
                    f"images, too few for at least one train and one test image with P_TRAIN={folder_cfg.P_TRAIN}, "
                    f"P_VAL={folder_cfg.P_VAL}; add images or change DATASET.FOLDER.P_TRAIN / P_VAL"
                )
            classname = names.get(class_folder, class_folder)
            for target, chunk in zip((train, val, test), parts):
                target.extend(Datum(impath=os.path.join(self.dataset_dir, class_folder, f), label=label,
                                    classname=classname) for f in chunk)
        return train, val, test
