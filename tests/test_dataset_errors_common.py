"""The shared benchmark-dataset flow (BenchmarkDataset) and its errors on bad input."""
import json
import os

import numpy as np
import pytest

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.data.datasets import Datum, build_dataset, load_pickle
from mmrl.data.benchmark import BenchmarkDataset, save_split
from mmrl.demo.images import write_image


class Toy(BenchmarkDataset):
    dataset_dir = "toy"
    image_dir = "pics"
    split_file = "split_toy.json"


class ToyMadeHere(Toy):
    """Creates its split from the folders, as datasets without a published split do."""

    def create_split(self):
        items = [Datum(os.path.join(self.image_dir, f"{c}{i}.png"), label, 0, c)
                 for label, c in enumerate("ab") for i in range(4)]
        return items[0:2] + items[4:6], [items[2], items[6]], [items[3], items[7]]


class ToyDatasetPrefix(Toy):
    split_prefix = "dataset"


class ToyTrainOnlyFewshot(Toy):
    fewshot_val = False


def cfg_for(root, shots=-1, subsample="all", seed=1):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NUM_SHOTS = shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = seed
    return cfg


def make_toy(root, with_split=True, test_items=True):
    folder = root / "toy"
    for c in "ab":
        for i in range(4):
            write_image(str(folder / "pics" / f"{c}{i}.png"), np.zeros((4, 4, 3), np.uint8))
    if with_split:
        split = {
            "train": [[f"{c}{i}.png", label, c] for label, c in enumerate("ab") for i in (0, 1)],
            "val": [[f"{c}2.png", label, c] for label, c in enumerate("ab")],
            "test": [[f"{c}3.png", label, c] for label, c in enumerate("ab")] if test_items else [],
        }
        (folder / "split_toy.json").write_text(json.dumps(split))
    return folder


def test_missing_dataset_folder_names_the_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        Toy(cfg_for(tmp_path / "nowhere"))
    message = str(err.value)
    assert f"folder {tmp_path / 'nowhere' / 'toy'} does not exist" in message
    assert "Dataset Toy" in message and "DATASETS.md" in message


def test_root_is_expanded_and_made_absolute(tmp_path, monkeypatch):
    make_toy(tmp_path)
    monkeypatch.chdir(tmp_path)
    ds = Toy(cfg_for("."))
    assert ds.dataset_dir == str(tmp_path / "toy")
    assert ds.image_dir == str(tmp_path / "toy" / "pics")
    assert ds.split_path == str(tmp_path / "toy" / "split_toy.json")
    assert ds.split_fewshot_dir == str(tmp_path / "toy" / "split_fewshot")


def test_missing_split_file_names_the_expected_path(tmp_path):
    folder = make_toy(tmp_path, with_split=False)
    with pytest.raises(FileNotFoundError) as err:
        Toy(cfg_for(tmp_path))
    message = str(err.value)
    assert f"split file {folder / 'split_toy.json'} not found" in message and "DATASETS.md" in message
    assert os.path.isdir(folder / "split_fewshot")  # created on every construction


def test_created_split_is_saved_then_read(tmp_path, capsys):
    folder = make_toy(tmp_path, with_split=False)
    ds = ToyMadeHere(cfg_for(tmp_path))
    assert capsys.readouterr().out == f"Saved split to {folder / 'split_toy.json'}\n"
    assert json.load(open(folder / "split_toy.json"))["val"] == [["a2.png", 0, "a"], ["b2.png", 1, "b"]]
    again = ToyMadeHere(cfg_for(tmp_path))
    assert capsys.readouterr().out == f"Reading split from {folder / 'split_toy.json'}\n"
    assert [d.impath for d in again.train_x] == [d.impath for d in ds.train_x]
    assert (again.num_classes, again.classnames, again.lab2cname) == (2, ["a", "b"], {0: "a", 1: "b"})
    assert again.cfg.DATASET.ROOT == str(tmp_path)


def test_dataset_prefix(tmp_path):
    folder = make_toy(tmp_path, with_split=False)
    items = [Datum(str(folder / "pics" / f"{c}{i}.png"), label, 0, c) for label, c in enumerate("ab") for i in range(2)]
    save_split(items, [], items, str(folder / "split_toy.json"), str(folder))
    assert json.load(open(folder / "split_toy.json"))["train"][0] == ["pics/a0.png", 0, "a"]
    ds = ToyDatasetPrefix(cfg_for(tmp_path))
    assert ds.train_x[0].impath == str(folder / "pics" / "a0.png")
    assert ds.val == []

    class BadPrefix(Toy):
        split_prefix = "images"

    with pytest.raises(ValueError, match="BadPrefix.split_prefix must be 'image' or 'dataset', got 'images'"):
        BadPrefix(cfg_for(tmp_path))


def test_fewshot_then_subsample(tmp_path):
    folder = make_toy(tmp_path)
    ds = Toy(cfg_for(tmp_path, shots=1, subsample="new", seed=5))
    assert [(d.label, d.classname) for d in ds.train_x] == [(0, "b")]
    assert [(d.label, d.classname) for d in ds.val] == [(0, "b")]
    cached = load_pickle(folder / "split_fewshot" / "shot_1-seed_5.pkl")
    # the cache is written before subsampling, so base and new runs share it
    assert [d.classname for d in cached["train"]] == ["a", "b"]
    assert [d.classname for d in cached["val"]] == ["a", "b"]


def test_train_only_fewshot_keeps_val(tmp_path):
    folder = make_toy(tmp_path)
    ds = ToyTrainOnlyFewshot(cfg_for(tmp_path, shots=1))
    assert (len(ds.train_x), len(ds.val)) == (2, 2)
    assert sorted(load_pickle(folder / "split_fewshot" / "shot_1-seed_1.pkl")) == ["train"]


def test_empty_test_split_names_dataset_split_and_file(tmp_path):
    folder = make_toy(tmp_path, test_items=False)
    with pytest.raises(ValueError) as err:
        Toy(cfg_for(tmp_path))
    assert str(err.value).startswith(
        f"Dataset Toy: the test split is empty (split file {folder / 'split_toy.json'})"
    )


def test_image_missing_from_disk_is_named(tmp_path):
    folder = make_toy(tmp_path)
    os.remove(folder / "pics" / "b3.png")
    with pytest.raises(FileNotFoundError, match=f'No file found at "{folder / "pics" / "b3.png"}"'):
        Toy(cfg_for(tmp_path))


def test_bad_subsample_value(tmp_path):
    make_toy(tmp_path)
    with pytest.raises(ValueError, match="SUBSAMPLE_CLASSES must be one of 'all', 'base', 'new', got 'half'"):
        Toy(cfg_for(tmp_path, subsample="half"))


def test_build_dataset_names(tmp_path):
    cfg = cfg_for(tmp_path)
    with pytest.raises(ValueError, match="DATASET.NAME is empty"):
        build_dataset(cfg)
    cfg.DATASET.NAME = "NoSuchDataset"
    with pytest.raises(ValueError, match='"NoSuchDataset" does not exist in the "DATASET" registry'):
        build_dataset(cfg)
