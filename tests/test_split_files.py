"""Split JSON files (schema, prefixes, round trip) and the split helpers used when they are missing."""
import json
import os
import random

import pytest

from mmrl.dassl.data.datasets import Datum
from mmrl.dassl.utils import listdir_nohidden
from mmrl.data.benchmark import read_and_split_data, read_split, save_split, split_trainval


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    return str(path)


def test_schema_is_the_lineage_json(tmp_path, capsys):
    prefix = str(tmp_path / "images")
    train = [Datum(touch(os.path.join(prefix, "cat", "a.jpg")), 0, 0, "cat")]
    val = [Datum(touch(os.path.join(prefix, "dog", "b.jpg")), 1, 0, "dog")]
    split_path = str(tmp_path / "split.json")
    save_split(train, val, [], split_path, prefix)
    assert capsys.readouterr().out == f"Saved split to {split_path}\n"
    with open(split_path) as f:
        text = f.read()
    assert text == (
        '{\n    "train": [\n        [\n            "cat/a.jpg",\n            0,\n            "cat"\n        ]\n    ],\n'
        '    "val": [\n        [\n            "dog/b.jpg",\n            1,\n            "dog"\n        ]\n    ],\n'
        '    "test": []\n}'
    )
    assert sorted(os.listdir(tmp_path)) == ["images", "split.json"]  # no temporary file left


def test_round_trip(tmp_path, capsys):
    prefix = str(tmp_path / "images")
    items = [Datum(touch(os.path.join(prefix, c, f"{c}{i}.png")), label, 0, c)
             for label, c in enumerate(["ant", "bee"]) for i in range(3)]
    split_path = str(tmp_path / "split.json")
    save_split(items[:2], items[2:4], items[4:], split_path, prefix + "/")
    capsys.readouterr()
    train, val, test = read_split(split_path, prefix)
    assert capsys.readouterr().out == f"Reading split from {split_path}\n"
    for got, want in ((train, items[:2]), (val, items[2:4]), (test, items[4:])):
        assert [(d.impath, d.label, d.classname, d.domain) for d in got] == [
            (d.impath, d.label, d.classname, 0) for d in want
        ]


def test_dataset_prefix_keeps_subfolders(tmp_path):
    # StanfordCars stores paths relative to the dataset folder: "cars_train/00001.jpg"
    root = str(tmp_path / "stanford_cars")
    item = Datum(touch(os.path.join(root, "cars_train", "00001.jpg")), 0, 0, "2012 Tesla Model S")
    split_path = os.path.join(root, "split.json")
    save_split([item], [], [item], split_path, root)
    assert json.load(open(split_path))["train"] == [["cars_train/00001.jpg", 0, "2012 Tesla Model S"]]
    train, _, _ = read_split(split_path, root)
    assert train[0].impath == os.path.join(root, "cars_train", "00001.jpg")


def test_labels_are_read_as_int(tmp_path):
    touch(str(tmp_path / "img" / "x.jpg"))
    split_path = tmp_path / "split.json"
    split_path.write_text(json.dumps({"train": [["x.jpg", "3", "x"]], "val": [], "test": []}))
    train, _, _ = read_split(str(split_path), str(tmp_path / "img"))
    assert train[0].label == 3 and isinstance(train[0].label, int)


def test_item_outside_prefix_is_refused(tmp_path):
    item = Datum(touch(str(tmp_path / "elsewhere" / "x.jpg")), 0, 0, "x")
    with pytest.raises(ValueError, match="is not under"):
        save_split([item], [], [], str(tmp_path / "split.json"), str(tmp_path / "images"))


def test_bad_split_files_name_the_file(tmp_path):
    path = tmp_path / "split.json"
    path.write_text('{"train": [], "val": []}')
    with pytest.raises(ValueError, match=r"split.json has no 'test' list"):
        read_split(str(path), str(tmp_path))
    path.write_text('{"train": [["a.jpg", 0]], "val": [], "test": []}')
    with pytest.raises(ValueError, match=r"train\[0\] = \['a.jpg', 0\] is not \[relpath, label, classname\]"):
        read_split(str(path), str(tmp_path))
    path.write_text('{"train": ')
    with pytest.raises(ValueError, match="split.json is not valid JSON"):
        read_split(str(path), str(tmp_path))
    path.write_text('{"train": [["missing.jpg", 0, "a"]], "val": [], "test": []}')
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_split(str(path), str(tmp_path))


def test_split_trainval_matches_hand_computation(tmp_path, capsys):
    labels = [1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 1]  # label 1: 6 items, label 0: 5 items
    trainval = [Datum(touch(str(tmp_path / f"{i}.jpg")), label, 0, str(label)) for i, label in enumerate(labels)]
    random.seed(4)
    train, val = split_trainval(trainval, p_val=0.2)
    assert capsys.readouterr().out == "Splitting trainval into 80% train and 20% val\n"

    random.seed(4)
    idx1 = [0, 2, 3, 5, 7, 10]  # round(6 * 0.2) = 1 to val
    idx0 = [1, 4, 6, 8, 9]  # round(5 * 0.2) = 1 to val
    random.shuffle(idx1)
    random.shuffle(idx0)
    assert val == [trainval[idx1[0]], trainval[idx0[0]]]
    assert train == [trainval[i] for i in idx1[1:]] + [trainval[i] for i in idx0[1:]]


def test_split_trainval_needs_a_val_item(tmp_path):
    trainval = [Datum(touch(str(tmp_path / "a.jpg")), 0, 0, "a")]
    with pytest.raises(ValueError, match="Label 0 has 1 train"):
        split_trainval(trainval)


def test_read_and_split_data_matches_hand_computation(tmp_path, capsys):
    image_dir = tmp_path / "images"
    for category in ("zebra", "Forest", "apple", "BACKGROUND"):
        for i in range(10):
            touch(str(image_dir / category / f"{category}_{i}.jpg"))
    touch(str(image_dir / "zebra" / ".hidden.jpg"))
    touch(str(image_dir / "README.txt"))  # a stray file is not a category

    random.seed(0)
    train, val, test = read_and_split_data(
        str(image_dir), ignored=["BACKGROUND"], new_cnames={"Forest": "Forest Land"}
    )
    assert capsys.readouterr().out == "Splitting into 50% train, 20% val, and 30% test\n"

    random.seed(0)
    exp_train, exp_val, exp_test = [], [], []
    for label, (category, cname) in enumerate([("Forest", "Forest Land"), ("apple", "apple"), ("zebra", "zebra")]):
        folder = str(image_dir / category)
        images = [os.path.join(folder, im) for im in listdir_nohidden(folder)]
        random.shuffle(images)
        exp_train += [(p, label, cname) for p in images[:5]]
        exp_val += [(p, label, cname) for p in images[5:7]]
        exp_test += [(p, label, cname) for p in images[7:]]
    as_tuples = lambda items: [(d.impath, d.label, d.classname) for d in items]
    assert as_tuples(train) == exp_train
    assert as_tuples(val) == exp_val
    assert as_tuples(test) == exp_test


def test_read_and_split_data_too_few_images(tmp_path):
    for i in range(3):
        touch(str(tmp_path / "images" / "cat" / f"{i}.jpg"))
    with pytest.raises(ValueError, match=r"cat has 3 images: too few .* \(got 2/1/0\)"):
        read_and_split_data(str(tmp_path / "images"))
