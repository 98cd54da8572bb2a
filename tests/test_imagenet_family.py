"""ImageNet and its four test-only variants: classnames.txt, wnid-folder labels, the
preprocessed cache, train-only few-shot, and the variants' own label spaces."""
import os

import pytest

import datasets  # noqa: F401  (registers the datasets)
from datasets.imagenet import read_classnames
from mmrl.dassl.data.datasets import DATASET_REGISTRY, load_pickle
from tests.dataset_trees import (
    build_imagenet,
    build_imagenetv2,
    build_wnid_variant,
    imagenet_classnames,
    make_cfg,
    write_classnames,
)

WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark


def build(root, name, **kwargs):
    return DATASET_REGISTRY.get(name)(make_cfg(root, name, **kwargs))


def test_read_classnames_keeps_file_order_and_spaces(tmp_path):
    path = write_classnames(str(tmp_path))
    names = read_classnames(path)
    assert len(names) == 1000
    assert list(names.items())[:3] == [("n01440764", "tench"), ("n01443537", "goldfish"),
                                       ("n01484850", "great white shark")]
    assert list(names)[-1] == "n90000994"


def test_imagenet_labels_splits_and_preprocessed_cache(tmp_path):
    dataset_dir = build_imagenet(str(tmp_path), list(reversed(WNIDS)), n_train=3, n_val=2)
    ds = build(tmp_path, "ImageNet")
    assert ds.classnames == ["tench", "goldfish", "great white shark"]
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (9, 6, 6)
    # The validation images are the val and the test split.
    assert [d.impath for d in ds.val] == [d.impath for d in ds.test]
    assert sorted({(d.label, os.path.basename(os.path.dirname(d.impath))) for d in ds.test}) == [
        (0, "n01440764"), (1, "n01443537"), (2, "n01484850")
    ]
    assert all(os.path.join("images", "val") in d.impath for d in ds.test)

    preprocessed = os.path.join(dataset_dir, "preprocessed.pkl")
    stored = load_pickle(preprocessed)
    assert sorted(stored) == ["test", "train"]
    assert [d.impath for d in stored["train"]] == [d.impath for d in ds.train_x]

    # Once the cache exists, classnames.txt is no longer read.
    os.remove(os.path.join(dataset_dir, "classnames.txt"))
    again = build(tmp_path, "ImageNet")
    assert again.classnames == ds.classnames


def test_imagenet_few_shot_samples_train_only(tmp_path):
    dataset_dir = build_imagenet(str(tmp_path), WNIDS, n_train=4, n_val=3)
    ds = build(tmp_path, "ImageNet", num_shots=2, seed=1)
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (6, 9, 9)
    stored = load_pickle(os.path.join(dataset_dir, "split_fewshot", "shot_2-seed_1.pkl"))
    assert list(stored) == ["train"]
    assert [d.impath for d in stored["train"]] == [d.impath for d in ds.train_x]


def test_imagenet_base_and_new(tmp_path):
    build_imagenet(str(tmp_path), WNIDS, n_train=2, n_val=2)
    base = build(tmp_path, "ImageNet", subsample="base")
    new = build(tmp_path, "ImageNet", subsample="new")
    assert base.classnames == ["tench", "goldfish"]
    assert new.classnames == ["great white shark"]
    assert [d.label for d in new.test] == [0, 0]
    assert len(base.val) == len(base.test) == 4


def test_imagenetv2_folder_index_is_the_classnames_line(tmp_path):
    build_imagenetv2(str(tmp_path), {0: 2, 2: 1, 999: 3})
    ds = build(tmp_path, "ImageNetV2", num_shots=1, subsample="base")  # both ignored
    assert ds.val is None
    assert len(ds.train_x) == len(ds.test) == 6
    assert [d.impath for d in ds.train_x] == [d.impath for d in ds.test]
    assert sorted({(d.label, d.classname) for d in ds.test}) == [
        (0, "tench"), (2, "great white shark"), (999, imagenet_classnames()[999][1])
    ]
    assert ds.num_classes == 1000


def test_imagenet_sketch_labels_index_sorted_wnids(tmp_path):
    build_wnid_variant(str(tmp_path), "ImageNetSketch", ["n01484850", "n01440764"], per_class=2)
    ds = build(tmp_path, "ImageNetSketch")
    assert ds.classnames == ["tench", "great white shark"]
    assert ds.val is None and len(ds.test) == 4


@pytest.mark.parametrize("name", ["ImageNetA", "ImageNetR"])
def test_200_class_variants_have_their_own_label_space(tmp_path, name):
    # Classes far apart in ImageNet's order get labels 0, 1, 2 here.
    wnids = ["n90000500", "n01443537", "n90000020"]
    build_wnid_variant(str(tmp_path), name, wnids, per_class=2)
    ds = build(tmp_path, name, num_shots=1, subsample="new")  # both ignored
    assert ds.classnames == ["goldfish", "made up class 20", "made up class 500"]
    assert sorted({d.label for d in ds.test}) == [0, 1, 2]
    assert len(ds.train_x) == len(ds.test) == 6  # README.txt is not a class
    assert ds.val is None
