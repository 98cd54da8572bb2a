"""The eleven few-shot benchmark datasets (ImageNet has its own file): split files, class-name
rules, labels, base/new classes and the few-shot cache, on miniature trees."""
import json
import os
import random
import sys

import pytest

import datasets  # noqa: F401  (registers the datasets)
from datasets.oxford_pets import breed_name
from datasets.stanford_cars import year_first
from datasets.sun397 import readable_name
from datasets.ucf101 import split_camel_case
from mmrl.dassl.data.datasets import DATASET_REGISTRY, load_pickle
from tests.dataset_trees import (
    AIRCRAFT_VARIANTS,
    JSON_DATASETS,
    build_class_folders,
    build_fgvc_aircraft,
    build_json_dataset,
    build_pets_raw,
    build_sun397_raw,
    build_ucf101_raw,
    make_cfg,
)


def build(root, name, **kwargs):
    return DATASET_REGISTRY.get(name)(make_cfg(root, name, **kwargs))


@pytest.mark.parametrize("name", sorted(JSON_DATASETS))
def test_reads_the_split_file(tmp_path, name):
    spec = JSON_DATASETS[name]
    split = build_json_dataset(str(tmp_path), name)
    ds = build(tmp_path, name)
    n = len(spec["classes"])

    assert ds.classnames == [cname for _, cname in spec["classes"]]
    assert ds.num_classes == n
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (3 * n, n, 2 * n)
    prefix = os.path.join(str(tmp_path), spec["dir"], spec["prefix"])
    for key, items in (("train", ds.train_x), ("val", ds.val), ("test", ds.test)):
        assert [(d.impath, d.label, d.classname) for d in items] == [
            (os.path.join(prefix, rel), label, cname) for rel, label, cname in split[key]
        ]
    assert os.path.isdir(os.path.join(str(tmp_path), spec["dir"], "split_fewshot"))


def test_stanford_cars_paths_are_relative_to_the_dataset_folder(tmp_path):
    build_json_dataset(str(tmp_path), "StanfordCars")
    ds = build(tmp_path, "StanfordCars")
    cars = os.path.join(str(tmp_path), "stanford_cars")
    assert ds.train_x[0].impath == os.path.join(cars, "cars_train", "c1_train_000.jpg")
    assert ds.test[0].impath == os.path.join(cars, "cars_test", "c1_test_000.jpg")


@pytest.mark.parametrize("name", ["OxfordPets", "Food101", "EuroSAT"])
def test_base_and_new_classes(tmp_path, name):
    spec = JSON_DATASETS[name]
    build_json_dataset(str(tmp_path), name)
    names = [cname for _, cname in spec["classes"]]
    m = (len(names) + 1) // 2  # ceil(n / 2) base classes

    base = build(tmp_path, name, subsample="base")
    new = build(tmp_path, name, subsample="new")
    assert base.classnames == names[:m]
    assert new.classnames == names[m:]
    for ds, k in ((base, m), (new, len(names) - m)):
        for items, per_class in ((ds.train_x, 3), (ds.val, 1), (ds.test, 2)):
            assert sorted({d.label for d in items}) == list(range(k))
            assert len(items) == per_class * k


def test_few_shot_subset_is_cached_and_shared_by_base_and_new(tmp_path, capsys):
    build_json_dataset(str(tmp_path), "DescribableTextures", sizes=(4, 3, 1))
    ds = build(tmp_path, "DescribableTextures", num_shots=2, seed=3)
    # 5 classes: 2 train shots per class; val takes min(2, 4) = 2 of its 3 per class.
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (10, 10, 5)
    cache = os.path.join(str(tmp_path), "dtd", "split_fewshot", "shot_2-seed_3.pkl")
    stored = load_pickle(cache)
    assert [d.impath for d in stored["train"]] == [d.impath for d in ds.train_x]
    assert [d.impath for d in stored["val"]] == [d.impath for d in ds.val]
    assert "Saving preprocessed few-shot data" in capsys.readouterr().out

    random.seed(12345)  # a different stream: a redraw would pick other images
    again = build(tmp_path, "DescribableTextures", num_shots=2, seed=3)
    assert "Loading preprocessed few-shot data from " + cache in capsys.readouterr().out
    assert [d.impath for d in again.train_x] == [d.impath for d in ds.train_x]

    base = build(tmp_path, "DescribableTextures", num_shots=2, seed=3, subsample="base")
    assert [d.impath for d in base.train_x] == [d.impath for d in ds.train_x if d.label < 3]
    assert os.listdir(os.path.dirname(cache)) == ["shot_2-seed_3.pkl"]


# --- splits drawn from the raw layouts (no split file) --------------------------------------


def read_json(path):
    with open(path) as f:
        return json.load(f)


def test_caltech101_ignores_background_folders_and_renames(tmp_path):
    image_dir = os.path.join(str(tmp_path), "caltech-101", "101_ObjectCategories")
    build_class_folders(image_dir, ["accordion", "airplanes", "BACKGROUND_Google", "Faces", "Faces_easy", "Leopards"])
    random.seed(1)
    ds = build(tmp_path, "Caltech101")
    # Sorted folder names (capitals first), the two background-like folders skipped.
    assert ds.classnames == ["face", "leopard", "accordion", "airplane"]
    # 5 images per class: round(2.5) = 2 train, round(1.0) = 1 val, 2 test.
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (8, 4, 8)
    written = read_json(os.path.join(str(tmp_path), "caltech-101", "split_zhou_Caltech101.json"))
    assert sorted(written) == ["test", "train", "val"]
    relpath, label, cname = written["train"][0]
    assert relpath.startswith("Faces/Faces_000") and (label, cname) == (0, "face")


def test_eurosat_readable_names(tmp_path):
    build_class_folders(os.path.join(str(tmp_path), "eurosat", "2750"),
                        ["AnnualCrop", "Highway", "PermanentCrop", "SeaLake", "River"])
    ds = build(tmp_path, "EuroSAT")
    assert ds.classnames == ["Annual Crop Land", "Highway or Road", "Permanent Crop Land", "River", "Sea or Lake"]


def test_dtd_and_food101_keep_folder_names(tmp_path):
    build_class_folders(os.path.join(str(tmp_path), "dtd", "images"), ["banded", "zigzagged"])
    build_class_folders(os.path.join(str(tmp_path), "food-101", "images"), ["apple_pie", "baklava"])
    assert build(tmp_path, "DescribableTextures").classnames == ["banded", "zigzagged"]
    assert build(tmp_path, "Food101").classnames == ["apple_pie", "baklava"]


def test_oxford_pets_from_annotations(tmp_path):
    build_pets_raw(str(tmp_path))
    ds = build(tmp_path, "OxfordPets")
    assert ds.classnames == ["abyssinian", "american_bulldog", "bengal"]
    # trainval has 4 per class: round(0.8) = 1 to val; test.txt has 2 per class.
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (9, 3, 6)
    first_test = ds.test[0]
    assert first_test.impath.endswith(os.path.join("oxford_pets", "images", "Abyssinian_5.jpg"))
    assert (first_test.label, first_test.classname) == (0, "abyssinian")
    assert os.path.isfile(os.path.join(str(tmp_path), "oxford_pets", "split_zhou_OxfordPets.json"))


def test_sun397_from_partition_files(tmp_path):
    build_sun397_raw(str(tmp_path))
    ds = build(tmp_path, "SUN397")
    assert ds.classnames == ["abbey", "interior balcony", "campus"]
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (6, 3, 6)
    assert ds.test[2].impath.endswith(os.path.join("SUN397", "b", "balcony", "interior", "sun_003.jpg"))
    assert ds.test[2].label == 1


def test_ucf101_camel_case_actions(tmp_path):
    build_ucf101_raw(str(tmp_path))
    ds = build(tmp_path, "UCF101")
    assert ds.classnames == ["Apply_Eye_Makeup", "Archery", "Yo_Yo"]
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (6, 3, 6)
    assert ds.test[0].impath.endswith(
        os.path.join("UCF-101-midframes", "Apply_Eye_Makeup", "v_ApplyEyeMakeup_g04_c01.jpg")
    )


def test_fgvc_aircraft_reads_its_text_files(tmp_path):
    build_fgvc_aircraft(str(tmp_path), per_split=2)
    ds = build(tmp_path, "FGVCAircraft")
    assert ds.classnames == AIRCRAFT_VARIANTS
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (8, 8, 8)
    assert [d.label for d in ds.test] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ds.train_x[0].impath.endswith(os.path.join("fgvc_aircraft", "images", "1000001.jpg"))
    # No split JSON: the text files are the split.
    assert not [f for f in os.listdir(os.path.join(str(tmp_path), "fgvc_aircraft")) if f.endswith(".json")]

    fs = build(tmp_path, "FGVCAircraft", num_shots=1, subsample="new")
    assert fs.classnames == ["A300B4", "F-16A/B"]
    assert (len(fs.train_x), len(fs.val)) == (2, 2)


def test_name_rules():
    assert breed_name("American_Bulldog_12") == "american_bulldog"
    assert breed_name("Abyssinian_1") == "abyssinian"
    assert year_first("AM General Hummer SUV 2000") == "2000 AM General Hummer SUV"
    assert readable_name("b/balcony/interior") == "interior balcony"
    assert readable_name("a/abbey") == "abbey"
    assert split_camel_case("ApplyEyeMakeup") == "Apply_Eye_Makeup"
    assert split_camel_case("YoYo") == "Yo_Yo"


@pytest.mark.parametrize("name,folder", [("StanfordCars", "stanford_cars"), ("OxfordFlowers", "oxford_flowers")])
def test_mat_annotations_without_scipy_point_at_the_split_file(tmp_path, monkeypatch, name, folder):
    # scipy is in the test extra (the prepare tests write .mat files): hide it to see the message.
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    dataset_dir = os.path.join(str(tmp_path), folder)
    os.makedirs(os.path.join(dataset_dir, "devkit"))
    os.makedirs(os.path.join(dataset_dir, "jpg"))
    with open(os.path.join(dataset_dir, "cat_to_name.json"), "w") as f:
        json.dump({"1": "pink primrose"}, f)
    for mat in ("imagelabels.mat", "cars_test_annos_withlabels.mat", "devkit/cars_meta.mat",
                "devkit/cars_train_annos.mat"):
        with open(os.path.join(dataset_dir, mat), "wb") as f:
            f.write(b"MATLAB 5.0 MAT-file")
    with pytest.raises(ImportError, match=r"needs scipy .*download the split file named in DATASETS.md"):
        build(tmp_path, name)
