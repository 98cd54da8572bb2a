"""Base/new class subsampling of the base-to-new protocol."""
import os

import pytest

from mmrl.dassl.data.datasets import Datum
from mmrl.data.benchmark import subsample_classes


def make_items(root, labels, prefix):
    items = []
    for i, label in enumerate(labels):
        path = os.path.join(str(root), f"{prefix}{i}.jpg")
        open(path, "w").close()
        items.append(Datum(impath=path, label=label, classname=f"class{label}"))
    return items


def test_odd_class_count_splits_4_and_3(tmp_path, capsys):
    train = make_items(tmp_path, [6, 0, 3, 1, 5, 2, 4, 0], "t")
    test = make_items(tmp_path, [4, 3, 6, 1], "s")

    base_train, base_test = subsample_classes(train, test, subsample="base")
    assert capsys.readouterr().out == "SUBSAMPLE BASE CLASSES!\n"
    assert [(it.label, it.classname) for it in base_train] == [
        (0, "class0"), (3, "class3"), (1, "class1"), (2, "class2"), (0, "class0")
    ]
    assert [(it.label, it.classname) for it in base_test] == [(3, "class3"), (1, "class1")]

    new_train, new_test = subsample_classes(train, test, subsample="new")
    assert capsys.readouterr().out == "SUBSAMPLE NEW CLASSES!\n"
    # classes 4, 5, 6 become 0, 1, 2; order and paths are kept
    assert [(it.label, it.classname) for it in new_train] == [(2, "class6"), (1, "class5"), (0, "class4")]
    assert [os.path.basename(it.impath) for it in new_train] == ["t0.jpg", "t4.jpg", "t6.jpg"]
    assert [(it.label, it.classname) for it in new_test] == [(0, "class4"), (2, "class6")]


def test_even_class_count_splits_in_half(tmp_path):
    train = make_items(tmp_path, [0, 1, 2, 3, 4, 5], "t")
    (base,) = subsample_classes(train, subsample="base")
    (new,) = subsample_classes(train, subsample="new")
    assert [it.label for it in base] == [0, 1, 2]
    assert [(it.label, it.classname) for it in new] == [(0, "class3"), (1, "class4"), (2, "class5")]


def test_items_are_rebuilt_with_domain_0(tmp_path):
    train = make_items(tmp_path, [0, 1], "t")
    (base,) = subsample_classes(train, subsample="base")
    assert base[0] is not train[0]
    assert (base[0].impath, base[0].domain) == (train[0].impath, 0)


def test_selection_follows_the_first_dataset(tmp_path):
    # labels of later datasets that train lacks are dropped, never kept
    train = make_items(tmp_path, [0, 2], "t")
    test = make_items(tmp_path, [0, 1, 2], "s")
    _, new_test = subsample_classes(train, test, subsample="new")
    assert [(it.label, it.classname) for it in new_test] == [(0, "class2")]


def test_all_returns_inputs_unchanged(tmp_path, capsys):
    train = make_items(tmp_path, [0, 1, 2], "t")
    val = []
    out = subsample_classes(train, val, subsample="all")
    assert out == (train, val) and out[0] is train
    assert capsys.readouterr().out == ""


def test_absent_val_stays_absent(tmp_path):
    train = make_items(tmp_path, [0, 1], "t")
    assert subsample_classes(train, None, subsample="base")[1] is None


def test_bad_value_rejected(tmp_path):
    train = make_items(tmp_path, [0, 1], "t")
    with pytest.raises(ValueError, match=r"SUBSAMPLE_CLASSES must be one of 'all', 'base', 'new', got 'Base'"):
        subsample_classes(train, subsample="Base")
