"""Miniature dataset trees in the real layouts, shared by the dataset tests.

Every image is a tiny 8x8 file; a tree holds a few classes with a few images each. Split
files are written by hand in the lineage's schema (indent 4, relative paths, [path, label,
classname]) so the tests read files shaped like the published ones.
"""
import json
import os
import re
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from mmrl.dassl.config import get_cfg_default
from mmrl.demo.images import write_image

Entry = Tuple[str, int, str]  # (relpath, label, classname)

# The first ImageNet classes, as they appear in classnames.txt.
REAL_IMAGENET = [
    ("n01440764", "tench"),
    ("n01443537", "goldfish"),
    ("n01484850", "great white shark"),
    ("n01491361", "tiger shark"),
    ("n01494475", "hammerhead shark"),
]


def tiny_image(path: str, value: int = 0) -> str:
    """An 8x8 image whose format follows the extension; ``value`` varies the pixels."""
    write_image(path, np.full((8, 8, 3), value % 256, dtype=np.uint8))
    return path


def make_cfg(root: str, name: str, num_shots: int = -1, subsample: str = "all", seed: int = 1, **folder):
    """The config a dataset is built from; ``folder`` sets DATASET.FOLDER keys (DIR=..., ...)."""
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = seed
    for key, value in folder.items():
        setattr(cfg.DATASET.FOLDER, key, value)
    return cfg


def write_split_dataset(prefix_dir: str, split_path: str, split: Dict[str, List[Entry]]) -> None:
    """Write every image a split names (under ``prefix_dir``) and the split JSON itself."""
    for n, (relpath, _, _) in enumerate(e for key in ("train", "val", "test") for e in split[key]):
        tiny_image(os.path.join(prefix_dir, relpath), n)
    os.makedirs(os.path.dirname(split_path), exist_ok=True)
    with open(split_path, "w") as f:
        json.dump({k: [list(e) for e in split[k]] for k in ("train", "val", "test")}, f, indent=4,
                  separators=(",", ": "))


def split_entries(classes: Sequence[Tuple[str, str]], relpath, sizes=(3, 1, 2)) -> Dict[str, List[Entry]]:
    """Entries for ``classes`` = [(folder-ish key, classname)], label = position, with ``sizes``
    images per class in train/val/test; ``relpath(key, split, i)`` names each image."""
    split: Dict[str, List[Entry]] = {"train": [], "val": [], "test": []}
    for label, (key, classname) in enumerate(classes):
        for name, size in zip(("train", "val", "test"), sizes):
            split[name] += [(relpath(key, name, i), label, classname) for i in range(size)]
    return split


# One description per dataset that reads a split JSON: folder, image folder (the split prefix),
# split file, classes [(key, classname)] in label order, and how an image path is formed.
JSON_DATASETS = {
    "Caltech101": dict(
        dir="caltech-101", prefix="101_ObjectCategories", split="split_zhou_Caltech101.json",
        classes=[("accordion", "accordion"), ("airplanes", "airplane"), ("anchor", "anchor"),
                 ("Faces", "face"), ("Leopards", "leopard")],
        relpath=lambda k, s, i: f"{k}/image_{s}_{i:04d}.jpg",
    ),
    "OxfordPets": dict(
        dir="oxford_pets", prefix="images", split="split_zhou_OxfordPets.json",
        classes=[("Abyssinian", "abyssinian"), ("american_bulldog", "american_bulldog"),
                 ("Bengal", "bengal"), ("great_pyrenees", "great_pyrenees"), ("Persian", "persian")],
        relpath=lambda k, s, i: f"{k}_{ {'train': 1, 'val': 50, 'test': 100}[s] + i}.jpg",
    ),
    "StanfordCars": dict(
        dir="stanford_cars", prefix="", split="split_zhou_StanfordCars.json",
        classes=[("c1", "2012 AM General Hummer SUV"), ("c2", "2012 Acura RL Sedan"),
                 ("c3", "2007 BMW X5 SUV"), ("c4", "2012 Tesla Model S Sedan")],
        relpath=lambda k, s, i: f"{'cars_test' if s == 'test' else 'cars_train'}/{k}_{s}_{i:03d}.jpg",
    ),
    "OxfordFlowers": dict(
        dir="oxford_flowers", prefix="jpg", split="split_zhou_OxfordFlowers.json",
        classes=[("1", "pink primrose"), ("2", "hard-leaved pocket orchid"), ("3", "canterbury bells"),
                 ("4", "sweet pea"), ("5", "english marigold")],
        relpath=lambda k, s, i: f"image_{int(k) * 100 + {'train': 0, 'val': 10, 'test': 20}[s] + i:05d}.jpg",
    ),
    "Food101": dict(
        dir="food-101", prefix="images", split="split_zhou_Food101.json",
        classes=[("apple_pie", "apple_pie"), ("baby_back_ribs", "baby_back_ribs"), ("baklava", "baklava"),
                 ("beef_carpaccio", "beef_carpaccio")],
        relpath=lambda k, s, i: f"{k}/{s}{i}.jpg",
    ),
    "SUN397": dict(
        dir="sun397", prefix="SUN397", split="split_zhou_SUN397.json",
        classes=[("a/abbey", "abbey"), ("b/balcony/interior", "interior balcony"),
                 ("b/balcony/exterior", "exterior balcony"), ("c/campus", "campus"), ("d/dam", "dam")],
        relpath=lambda k, s, i: f"{k}/sun_{s}{i}.jpg",
    ),
    "DescribableTextures": dict(
        dir="dtd", prefix="images", split="split_zhou_DescribableTextures.json",
        classes=[("banded", "banded"), ("blotchy", "blotchy"), ("braided", "braided"), ("bubbly", "bubbly"),
                 ("bumpy", "bumpy")],
        relpath=lambda k, s, i: f"{k}/{k}_{s}{i:04d}.jpg",
    ),
    "EuroSAT": dict(
        dir="eurosat", prefix="2750", split="split_zhou_EuroSAT.json",
        classes=[("AnnualCrop", "Annual Crop Land"), ("Forest", "Forest"),
                 ("HerbaceousVegetation", "Herbaceous Vegetation Land"), ("Highway", "Highway or Road")],
        relpath=lambda k, s, i: f"{k}/{k}_{s}{i}.jpg",
    ),
    "UCF101": dict(
        dir="ucf101", prefix="UCF-101-midframes", split="split_zhou_UCF101.json",
        classes=[("Apply_Eye_Makeup", "Apply_Eye_Makeup"), ("Apply_Lipstick", "Apply_Lipstick"),
                 ("Archery", "Archery"), ("Baby_Crawling", "Baby_Crawling"), ("Yo_Yo", "Yo_Yo")],
        relpath=lambda k, s, i: f"{k}/v_{k.replace('_', '')}_g{ {'train': 8, 'val': 9, 'test': 1}[s]:02d}_c0{i + 1}.jpg",
    ),
}


def build_json_dataset(root: str, name: str, sizes=(3, 1, 2)) -> Dict[str, List[Entry]]:
    """The miniature tree of a split-JSON dataset under ``root``; returns the split written."""
    spec = JSON_DATASETS[name]
    dataset_dir = os.path.join(root, spec["dir"])
    split = split_entries(spec["classes"], spec["relpath"], sizes)
    write_split_dataset(os.path.join(dataset_dir, spec["prefix"]), os.path.join(dataset_dir, spec["split"]), split)
    return split


def build_class_folders(image_dir: str, folders: Iterable[str], per_class: int = 5, ext: str = ".jpg") -> None:
    """``image_dir/<folder>/<i>.jpg``: the raw layout read by read_and_split_data."""
    for c, folder in enumerate(folders):
        for i in range(per_class):
            tiny_image(os.path.join(image_dir, folder, f"{folder}_{i:04d}{ext}"), c * 10 + i)


def build_pets_raw(root: str) -> str:
    """Oxford Pets without its split JSON: images/ plus annotations/{trainval,test}.txt."""
    dataset_dir = os.path.join(root, "oxford_pets")
    # (image stem, class id, species): class ids are 1-based, species 1 = cat, 2 = dog.
    breeds = [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 3, 1)]
    with open(_mkparent(os.path.join(dataset_dir, "annotations", "trainval.txt")), "w") as trainval, \
            open(os.path.join(dataset_dir, "annotations", "test.txt"), "w") as test:
        for breed, class_id, species in breeds:
            for i in range(1, 7):
                stem = f"{breed}_{i}"
                tiny_image(os.path.join(dataset_dir, "images", stem + ".jpg"), i)
                (trainval if i <= 4 else test).write(f"{stem} {class_id} {species} {i}\n")
    return dataset_dir


def build_sun397_raw(root: str) -> str:
    """SUN397 without its split JSON: ClassName.txt, Training_01.txt, Testing_01.txt."""
    dataset_dir = os.path.join(root, "sun397")
    categories = ["a/abbey", "b/balcony/interior", "c/campus"]
    with open(_mkparent(os.path.join(dataset_dir, "ClassName.txt")), "w") as f:
        f.writelines(f"/{c}\n" for c in categories)
    with open(os.path.join(dataset_dir, "Training_01.txt"), "w") as train, \
            open(os.path.join(dataset_dir, "Testing_01.txt"), "w") as test:
        for c in categories:
            for i in range(5):
                rel = f"{c}/sun_{i:03d}.jpg"
                tiny_image(os.path.join(dataset_dir, "SUN397", rel), i)
                (train if i < 3 else test).write(f"/{rel}\n")
    return dataset_dir


def build_ucf101_raw(root: str) -> str:
    """UCF101 without its split JSON: ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt."""
    dataset_dir = os.path.join(root, "ucf101")
    actions = ["ApplyEyeMakeup", "Archery", "YoYo"]
    lists = os.path.join(dataset_dir, "ucfTrainTestlist")
    with open(_mkparent(os.path.join(lists, "classInd.txt")), "w") as f:
        f.writelines(f"{i + 1} {a}\n" for i, a in enumerate(actions))
    with open(os.path.join(lists, "trainlist01.txt"), "w") as train, \
            open(os.path.join(lists, "testlist01.txt"), "w") as test:
        for label, action in enumerate(actions):
            renamed = "_".join(re.findall("[A-Z][^A-Z]*", action))
            for g in range(1, 6):
                video = f"v_{action}_g{g:02d}_c01"
                tiny_image(os.path.join(dataset_dir, "UCF-101-midframes", renamed, video + ".jpg"), g)
                if g <= 3:
                    train.write(f"{action}/{video}.avi {label + 1}\n")
                else:
                    test.write(f"{action}/{video}.avi\n")
    return dataset_dir


AIRCRAFT_VARIANTS = ["707-320", "727-200", "A300B4", "F-16A/B"]


def build_fgvc_aircraft(root: str, per_split: int = 2) -> str:
    """FGVC-Aircraft: images/<id>.jpg, variants.txt, images_variant_{train,val,test}.txt."""
    dataset_dir = os.path.join(root, "fgvc_aircraft")
    with open(_mkparent(os.path.join(dataset_dir, "variants.txt")), "w") as f:
        f.writelines(v + "\n" for v in AIRCRAFT_VARIANTS)
    image_id = 1000000
    for split in ("train", "val", "test"):
        with open(os.path.join(dataset_dir, f"images_variant_{split}.txt"), "w") as f:
            for variant in AIRCRAFT_VARIANTS:
                for _ in range(per_split):
                    image_id += 1
                    tiny_image(os.path.join(dataset_dir, "images", f"{image_id}.jpg"), image_id)
                    f.write(f"{image_id} {variant}\n")
    return dataset_dir


def imagenet_classnames() -> List[Tuple[str, str]]:
    """1000 (wnid, name) pairs: the real first five, then made-up well-formed wnids."""
    extra = [(f"n{90000000 + i:08d}", f"made up class {i}") for i in range(1000 - len(REAL_IMAGENET))]
    return REAL_IMAGENET + extra


def write_classnames(dataset_dir: str, pairs=None) -> str:
    path = _mkparent(os.path.join(dataset_dir, "classnames.txt"))
    with open(path, "w") as f:
        f.writelines(f"{wnid} {name}\n" for wnid, name in (pairs or imagenet_classnames()))
    return path


def build_wnid_tree(image_dir: str, wnids: Sequence[str], per_class: int, ext: str = ".JPEG") -> None:
    for c, wnid in enumerate(wnids):
        for i in range(per_class):
            tiny_image(os.path.join(image_dir, wnid, f"{wnid}_{i}{ext}"), c * 10 + i)


def build_imagenet(root: str, wnids: Sequence[str], n_train: int = 3, n_val: int = 2, flat_val: bool = False) -> str:
    """ImageNet with classnames.txt and images/{train,val}/<wnid>/ (or a flat val folder)."""
    dataset_dir = os.path.join(root, "imagenet")
    write_classnames(dataset_dir)
    build_wnid_tree(os.path.join(dataset_dir, "images", "train"), wnids, n_train)
    if flat_val:
        for i in range(n_val * len(wnids)):
            tiny_image(os.path.join(dataset_dir, "images", "val", f"ILSVRC2012_val_{i + 1:08d}.JPEG"), i)
    else:
        build_wnid_tree(os.path.join(dataset_dir, "images", "val"), wnids, n_val)
    return dataset_dir


VARIANT_FOLDERS = {
    "ImageNetSketch": ("imagenet-sketch", "images"),
    "ImageNetA": ("imagenet-adversarial", "imagenet-a"),
    "ImageNetR": ("imagenet-rendition", "imagenet-r"),
}


def build_wnid_variant(root: str, name: str, wnids: Sequence[str], per_class: int = 2) -> str:
    """ImageNet-Sketch/-A/-R: classnames.txt and <image dir>/<wnid>/, plus A/R's README.txt."""
    folder, image_dir = VARIANT_FOLDERS[name]
    dataset_dir = os.path.join(root, folder)
    write_classnames(dataset_dir)
    build_wnid_tree(os.path.join(dataset_dir, image_dir), wnids, per_class, ext=".jpg")
    if name in ("ImageNetA", "ImageNetR"):
        with open(os.path.join(dataset_dir, image_dir, "README.txt"), "w") as f:
            f.write("200 classes\n")
    return dataset_dir


def build_imagenetv2(root: str, filled: Dict[int, int]) -> str:
    """ImageNetV2 with all 1000 class folders 0..999; ``filled`` = {folder index: number of images}."""
    dataset_dir = os.path.join(root, "imagenetv2")
    write_classnames(dataset_dir)
    image_dir = os.path.join(dataset_dir, "imagenetv2-matched-frequency-format-val")
    for i in range(1000):
        os.makedirs(os.path.join(image_dir, str(i)), exist_ok=True)
    for i, count in filled.items():
        for j in range(count):
            tiny_image(os.path.join(image_dir, str(i), f"img{j}.jpeg"), j)
    return dataset_dir


def _mkparent(path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path
