"""The synthetic demo dataset: generation, its split, and the demo through the dataset flow."""
import filecmp
import json
import os

import numpy as np
import pytest

import datasets  # noqa: F401  (registers SyntheticDemo)
from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.data import DataManager
from mmrl.dassl.data.datasets import build_dataset
from mmrl.demo.images import demo_classnames, make_demo_images, render_demo_image

FIRST_TEN = [
    "red_circle", "green_square", "blue_triangle", "yellow_cross", "purple_ring",
    "orange_diamond", "cyan_stripes", "white_circle", "red_square", "green_triangle",
]


def demo_cfg(root, shots=-1, subsample="all", seed=1):
    cfg = get_cfg_default()
    cfg.DATASET.NAME = "SyntheticDemo"
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NUM_SHOTS = shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = seed
    return cfg


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    build_dataset(demo_cfg(root))
    return root


def all_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def test_generation_is_deterministic(tmp_path):
    make_demo_images(str(tmp_path / "a"), n_classes=3, per_class=5, size=16, seed=3)
    make_demo_images(str(tmp_path / "b"), n_classes=3, per_class=5, size=16, seed=3)
    files = all_files(tmp_path / "a")
    assert files == all_files(tmp_path / "b")
    assert len(files) == 3 * 5 + 1
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert mismatch == [] and errors == []
    make_demo_images(str(tmp_path / "c"), n_classes=3, per_class=5, size=16, seed=4)
    assert not filecmp.cmp(tmp_path / "a" / files[0], tmp_path / "c" / files[0], shallow=False)


def test_tree_and_split_layout(demo_root):
    folder = demo_root / "demo"
    assert sorted(os.listdir(folder / "images")) == sorted(FIRST_TEN)
    assert sorted(os.listdir(folder / "images" / "red_circle"))[:3] == ["red_circle_0.png", "red_circle_1.png", "red_circle_10.png"]
    assert all(len(os.listdir(folder / "images" / c)) == 24 for c in FIRST_TEN)
    split = json.load(open(folder / "split_demo.json"))
    assert [len(split[k]) for k in ("train", "val", "test")] == [120, 50, 70]
    # per class: images 0-11 train, 12-16 val, 17-23 test
    assert split["train"][0] == ["red_circle/red_circle_0.png", 0, "red_circle"]
    assert split["val"][0] == ["red_circle/red_circle_12.png", 0, "red_circle"]
    assert split["test"][-1] == ["green_triangle/green_triangle_23.png", 9, "green_triangle"]


def test_classes_are_visible_in_pixels():
    assert demo_classnames(10) == FIRST_TEN
    expected = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230)}
    for c, colour in enumerate(["red", "green", "blue"]):
        for i in range(3):
            img = render_demo_image(c, i, size=48, seed=0).reshape(-1, 3).astype(float)
            bright = img[img.sum(1) > np.percentile(img.sum(1), 85)]
            assert np.abs(np.median(bright, 0) - expected[colour]).max() < 40
    a, b = render_demo_image(0, 0), render_demo_image(0, 1)
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="n_classes must be between 1 and 56, got 57"):
        demo_classnames(57)


def test_generation_is_idempotent_and_redoes_interrupted_runs(tmp_path):
    target = tmp_path / "demo"
    make_demo_images(str(target), n_classes=2, per_class=5, size=8)
    split = target / "split_demo.json"
    stamp = os.stat(split).st_mtime_ns
    make_demo_images(str(target), n_classes=2, per_class=5, size=8)
    assert os.stat(split).st_mtime_ns == stamp

    # an interrupted run leaves images but no split file: everything is redone
    os.remove(split)
    (target / "images" / "red_circle" / "red_circle_0.png").write_bytes(b"half written")
    make_demo_images(str(target), n_classes=2, per_class=5, size=8)
    assert split.exists()
    assert sorted(os.listdir(target)) == ["images", "split_demo.json"]
    assert (target / "images" / "red_circle" / "red_circle_0.png").read_bytes()[:4] == b"\x89PNG"


def test_too_few_images_per_class(tmp_path):
    with pytest.raises(ValueError, match="per_class=3 is too small"):
        make_demo_images(str(tmp_path / "demo"), per_class=3)


def test_dataset_flow_base_new_and_fewshot(demo_root, capsys):
    ds = build_dataset(demo_cfg(demo_root))
    assert (len(ds.train_x), len(ds.val), len(ds.test), ds.num_classes) == (120, 50, 70, 10)
    assert ds.classnames == FIRST_TEN
    assert ds.template == "a photo of a {}."
    assert "Generating" not in capsys.readouterr().out  # generated once, by the fixture

    base = build_dataset(demo_cfg(demo_root, subsample="base"))
    new = build_dataset(demo_cfg(demo_root, subsample="new"))
    assert base.classnames == FIRST_TEN[:5] and new.classnames == FIRST_TEN[5:]
    assert sorted({d.label for d in new.test}) == [0, 1, 2, 3, 4]

    fs = build_dataset(demo_cfg(demo_root, shots=2, subsample="base", seed=1))
    assert (len(fs.train_x), len(fs.val), len(fs.test)) == (10, 10, 35)
    assert os.path.isfile(demo_root / "demo" / "split_fewshot" / "shot_2-seed_1.pkl")
    fs16 = build_dataset(demo_cfg(demo_root, shots=16, seed=2))
    # 12 train images per class (< 16: all kept), val min(16, 4) = 4 per class
    assert (len(fs16.train_x), len(fs16.val)) == (120, 40)


def test_data_manager_summary(demo_root, capsys):
    cfg = demo_cfg(demo_root, shots=1, subsample="new")
    cfg.INPUT.SIZE = (32, 32)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    dm = DataManager(cfg)
    out = capsys.readouterr().out
    assert out.startswith("Loading dataset: SyntheticDemo\n")
    assert out.endswith(
        "---------  -------------\n"
        "Dataset    SyntheticDemo\n"
        "# classes  5\n"
        "# train_x  5\n"
        "# val      5\n"
        "# test     35\n"
        "---------  -------------\n"
    )
    assert (dm.num_classes, dm.num_source_domains, dm.train_loader_u) == (5, 0, None)
    assert dm.lab2cname == dict(enumerate(FIRST_TEN[5:]))
    assert (len(dm.train_loader_x), len(dm.val_loader), len(dm.test_loader)) == (1, 1, 2)
    batch = next(iter(dm.train_loader_x))
    assert batch["img"].shape == (4, 3, 32, 32)
