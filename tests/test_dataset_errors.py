"""Broken layouts that researchers hit, and the messages that explain them."""
import json
import os
import re
import shutil

import pytest

import datasets  # noqa: F401  (registers the datasets)
from datasets.imagenet import read_classnames
from mmrl.dassl.data.datasets import DATASET_REGISTRY
from tests.dataset_trees import (
    build_fgvc_aircraft,
    build_imagenet,
    build_imagenetv2,
    build_json_dataset,
    build_pets_raw,
    build_wnid_variant,
    imagenet_classnames,
    make_cfg,
    write_classnames,
)

WNIDS = ["n01440764", "n01443537"]


def build(root, name, **kwargs):
    return DATASET_REGISTRY.get(name)(make_cfg(root, name, **kwargs))


def test_missing_dataset_folder_names_the_path(tmp_path):
    expected = os.path.join(str(tmp_path), "oxford_pets")
    with pytest.raises(FileNotFoundError, match=re.escape(expected) + r" does not exist.*DATASETS.md"):
        build(tmp_path, "OxfordPets")
    with pytest.raises(FileNotFoundError, match=re.escape(os.path.join(str(tmp_path), "imagenet-sketch"))
                       + r" does not exist.*DATASETS.md"):
        build(tmp_path, "ImageNetSketch")


@pytest.mark.parametrize(
    "name,folder,split_file,raw",
    [
        ("Caltech101", "caltech-101", "split_zhou_Caltech101.json", "101_ObjectCategories"),
        ("StanfordCars", "stanford_cars", "split_zhou_StanfordCars.json", "devkit/cars_meta.mat"),
        ("OxfordPets", "oxford_pets", "split_zhou_OxfordPets.json", "annotations/trainval.txt"),
        ("UCF101", "ucf101", "split_zhou_UCF101.json", "ucfTrainTestlist/classInd.txt"),
    ],
)
def test_missing_split_file_names_it_before_the_raw_files(tmp_path, name, folder, split_file, raw):
    dataset_dir = os.path.join(str(tmp_path), folder)
    os.makedirs(os.path.join(dataset_dir, "101_ObjectCategories"))  # present but empty for Caltech101
    with pytest.raises(FileNotFoundError) as err:
        build(tmp_path, name)
    assert str(err.value) == (
        f"{name}: split file {os.path.join(dataset_dir, split_file)} not found, and "
        f"{os.path.join(dataset_dir, raw)} (needed to draw a new split instead) is missing or empty. "
        f"Download {split_file} into {dataset_dir} as described in DATASETS.md; "
        "the published split keeps results comparable."
    )
    assert not os.path.exists(os.path.join(dataset_dir, split_file))


def test_empty_split(tmp_path):
    build_json_dataset(str(tmp_path), "Food101")
    path = os.path.join(str(tmp_path), "food-101", "split_zhou_Food101.json")
    with open(path) as f:
        split = json.load(f)
    split["test"] = []
    with open(path, "w") as f:
        json.dump(split, f)
    with pytest.raises(ValueError, match=r"Food101: the test split is empty \(split file " + re.escape(path)):
        build(tmp_path, "Food101")


def test_split_naming_a_missing_image(tmp_path):
    build_json_dataset(str(tmp_path), "OxfordFlowers")
    missing = os.path.join(str(tmp_path), "oxford_flowers", "jpg", "image_00100.jpg")
    os.remove(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        build(tmp_path, "OxfordFlowers")


def test_imagenet_flat_validation_folder(tmp_path):
    build_imagenet(str(tmp_path), WNIDS, flat_val=True)
    val = os.path.join(str(tmp_path), "imagenet", "images", "val")
    with pytest.raises(ValueError) as err:
        build(tmp_path, "ImageNet")
    message = str(err.value)
    assert message.startswith(f"{val} holds 4 images directly, but one sub-folder per class (wnid) is expected")
    assert "valprep.sh" in message and "DATASETS.md" in message


def test_imagenet_train_and_val_with_different_classes(tmp_path):
    build_imagenet(str(tmp_path), WNIDS)
    shutil.rmtree(os.path.join(str(tmp_path), "imagenet", "images", "val", "n01440764"))
    with pytest.raises(ValueError, match=r"must hold the same wnid folders; only in train: \['n01440764'\]"):
        build(tmp_path, "ImageNet")


def test_imagenet_folder_not_in_classnames(tmp_path):
    build_imagenet(str(tmp_path), WNIDS)
    os.rename(os.path.join(str(tmp_path), "imagenet", "images", "train", "n01443537"),
              os.path.join(str(tmp_path), "imagenet", "images", "train", "goldfish"))
    with pytest.raises(ValueError, match=r"sub-folder\(s\) goldfish that are not wnids listed in classnames.txt"):
        build(tmp_path, "ImageNet")


def test_missing_classnames_file(tmp_path):
    build_wnid_variant(str(tmp_path), "ImageNetR", WNIDS)
    path = os.path.join(str(tmp_path), "imagenet-rendition", "classnames.txt")
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=re.escape(path) + r" is missing.*'n01440764 tench'.*DATASETS.md"):
        build(tmp_path, "ImageNetR")


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"0": ["n01440764", "tench"]}', r"looks like JSON \(e.g. imagenet_class_index.json\)"),
        ("n01440764 tench\nn01443537\n", r"line 2: 'n01443537' is not '<wnid> <class name>'"),
        ("n01440764 tench\n0 goldfish\n", r"line 2: '0 goldfish' is not '<wnid> <class name>'"),
        ("n01440764\ttench\n", r"line 1: 'n01440764\\ttench' is not '<wnid> <class name>'"),
        ("n01440764 tench\nn01440764 tench\n", r"line 2: wnid n01440764 appears a second time"),
        ("n01440764 tench\nn01443537 goldfish\n", r"has 2 classes, expected 1000"),
    ],
)
def test_classnames_in_another_format(tmp_path, content, message):
    path = os.path.join(str(tmp_path), "classnames.txt")
    with open(path, "w") as f:
        f.write(content)
    with pytest.raises(ValueError, match=message):
        read_classnames(path)


def test_imagenetv2_missing_class_folder(tmp_path):
    build_imagenetv2(str(tmp_path), {0: 1})
    image_dir = os.path.join(str(tmp_path), "imagenetv2", "imagenetv2-matched-frequency-format-val")
    os.rmdir(os.path.join(image_dir, "500"))
    with pytest.raises(FileNotFoundError, match=r"class folder .*500 is missing; .* 1000 folders 0..999"):
        build(tmp_path, "ImageNetV2")


def test_variant_without_images(tmp_path):
    dataset_dir = os.path.join(str(tmp_path), "imagenet-adversarial")
    write_classnames(dataset_dir, imagenet_classnames())
    os.makedirs(os.path.join(dataset_dir, "imagenet-a"))
    with pytest.raises(ValueError, match=r"ImageNetA: no images found under .*imagenet-a"):
        build(tmp_path, "ImageNetA")


def test_fgvc_aircraft_unknown_variant(tmp_path):
    dataset_dir = build_fgvc_aircraft(str(tmp_path), per_split=1)
    with open(os.path.join(dataset_dir, "images_variant_val.txt"), "a") as f:
        f.write("1000001 Boeing 999\n")
    with pytest.raises(ValueError, match=r"images_variant_val.txt, line 5: variant 'Boeing 999' is not listed"):
        build(tmp_path, "FGVCAircraft")


def test_fgvc_aircraft_missing_list(tmp_path):
    dataset_dir = build_fgvc_aircraft(str(tmp_path), per_split=1)
    os.remove(os.path.join(dataset_dir, "variants.txt"))
    with pytest.raises(FileNotFoundError, match=r"variants.txt is missing \(FGVC-Aircraft variant list\)"):
        build(tmp_path, "FGVCAircraft")


def test_pets_malformed_annotation(tmp_path):
    dataset_dir = build_pets_raw(str(tmp_path))
    with open(os.path.join(dataset_dir, "annotations", "test.txt"), "a") as f:
        f.write("Bengal_9 cat\n")
    with pytest.raises(ValueError, match=r"test.txt, line 7: 'Bengal_9 cat' is not '<image name> <class id>"):
        build(tmp_path, "OxfordPets")
