"""The per-class split drawn when a dataset has no split file: for a fixed seed, every dataset
draws exactly the split it drew before the draw was written once (the digests below)."""
import hashlib
import json
import os
import random

import numpy as np
import pytest

import datasets  # (registers the datasets)
import datasets.oxford_flowers
import datasets.stanford_cars
from mmrl.dassl.data.datasets import DATASET_REGISTRY
from tests.dataset_trees import build_class_folders, build_pets_raw, build_sun397_raw, build_ucf101_raw, \
    make_cfg, tiny_image

# Class sizes that exercise the rounding of every fraction (50/20/30 and 80/20).
SIZES = (5, 7, 10, 13)


def class_folders(image_dir):
    folders = ["alpha", "Beta", "gamma_ray", "delta"]
    for folder, n in zip(folders, SIZES):
        build_class_folders(image_dir, [folder], per_class=n)


# What scipy's loadmat returns for the .mat files of Flowers and Cars, by path: scipy is optional,
# so the files are written empty and their contents handed to the datasets' reader directly.
MAT_CONTENTS = {}


def fake_mat(path, contents):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    MAT_CONTENTS[path] = contents


def flowers_raw(root):
    dataset_dir = os.path.join(root, "oxford_flowers")
    labels = [label for label, n in zip((3, 1, 2, 4), SIZES) for _ in range(n)]
    random.Random(0).shuffle(labels)
    for index in range(len(labels)):
        tiny_image(os.path.join(dataset_dir, "jpg", f"image_{index + 1:05d}.jpg"), index)
    fake_mat(os.path.join(dataset_dir, "imagelabels.mat"), {"labels": np.array([labels])})
    with open(os.path.join(dataset_dir, "cat_to_name.json"), "w") as f:
        json.dump({"1": "pink primrose", "2": "sweet pea", "3": "rose", "4": "lotus"}, f)


def cars_raw(root):
    dataset_dir = os.path.join(root, "stanford_cars")
    names = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "BMW X5 SUV 2007"]
    record = np.dtype([("fname", "O"), ("class", "O")])

    def annotations(subdir, per_class):
        rows = []
        for c, n in enumerate(per_class):
            for i in range(n):
                fname = f"{c}{i:04d}.jpg"
                tiny_image(os.path.join(dataset_dir, subdir, fname), i)
                rows.append((np.array([fname]), np.array([[c + 1]])))
        return np.array([rows], dtype=record)

    class_names = np.empty((1, len(names)), dtype=object)
    for i, n in enumerate(names):
        class_names[0, i] = np.array([n])
    fake_mat(os.path.join(dataset_dir, "devkit", "cars_meta.mat"), {"class_names": class_names})
    fake_mat(os.path.join(dataset_dir, "devkit", "cars_train_annos.mat"),
             {"annotations": annotations("cars_train", SIZES[:3])})
    fake_mat(os.path.join(dataset_dir, "cars_test_annos_withlabels.mat"),
             {"annotations": annotations("cars_test", (2, 2, 2))})


# Dataset -> (builder of its raw layout, extra DATASET.FOLDER keys).
RAW = {
    "Caltech101": (lambda r: class_folders(os.path.join(r, "caltech-101", "101_ObjectCategories")), {}),
    "DescribableTextures": (lambda r: class_folders(os.path.join(r, "dtd", "images")), {}),
    "EuroSAT": (lambda r: class_folders(os.path.join(r, "eurosat", "2750")), {}),
    "Food101": (lambda r: class_folders(os.path.join(r, "food-101", "images")), {}),
    "OxfordPets": (build_pets_raw, {}),
    "SUN397": (build_sun397_raw, {}),
    "UCF101": (build_ucf101_raw, {}),
    "OxfordFlowers": (flowers_raw, {}),
    "StanfordCars": (cars_raw, {}),
    "ImageFolder": (lambda r: class_folders(os.path.join(r, "mine")), {"DIR": "mine"}),
}

# sha256 of the JSON of [[relpath, label, classname], ...] for train, val and test, drawn with
# random.seed(SEED) (ImageFolder: DATASET.FOLDER.SPLIT_SEED 1) and sorted directory listings.
SEED = 3
BEFORE = {
    "Caltech101": "77839482c9e54fc42295b6263a1630790ce5028d80b30a1baa11047346f1441f",
    "DescribableTextures": "43190fe56f5a7328bd9f2b439f081930440cd711f3a932fd5a4edfd341772603",
    "EuroSAT": "a86a327f076fff92874dc8ef7ef1706b206d248e6f211cc656584e18160a26ff",
    "Food101": "bf375ffbab083323127791950be2e1c50687b36cb914d3b036ef3331490025a1",
    "ImageFolder": "93c3163293ff298c52ca18f70ec1fdce8c75b49160baa698c8fe99113b235deb",
    "OxfordFlowers": "c00a6c15d31dc6226b0b53b019a377069586b1a74aedf5ffc02ebe73c03ccfb1",
    "OxfordPets": "aaf29c54f391ffcb47b6201b3fa8689761218a4aba19be63aff76561602e9d43",
    "SUN397": "c487b03edf00f52cbb62852b4575f0e7c8f1ea7e7c2f5fb1f0e2a591e359a8d4",
    "StanfordCars": "358a962721c378077e1eecaa9660e27478c0c238a9f1e509073208a38c34fe05",
    "UCF101": "ec939e5ffaddf56c40e9765c5acb80430f42bab7ea423f6c0d48687386bfae95",
}


def drawn_split(root, name):
    build_raw, folder = RAW[name]
    build_raw(str(root))
    random.seed(SEED)
    ds = DATASET_REGISTRY.get(name)(make_cfg(str(root), name, **folder))
    splits = [[[os.path.relpath(d.impath, str(root)), d.label, d.classname] for d in items]
              for items in (ds.train_x, ds.val, ds.test)]
    return hashlib.sha256(json.dumps(splits).encode()).hexdigest()


@pytest.fixture
def sorted_listings(monkeypatch):
    """Directory listings in sorted order, so the digests do not depend on the filesystem; .mat
    files read from MAT_CONTENTS."""
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": sorted(listdir(path)))
    for module in (datasets.oxford_flowers, datasets.stanford_cars):
        monkeypatch.setattr(module, "load_mat", MAT_CONTENTS.__getitem__)


@pytest.mark.parametrize("name", sorted(RAW))
def test_split_is_the_one_drawn_before(tmp_path, sorted_listings, capsys, name):
    assert drawn_split(tmp_path, name) == BEFORE[name]
