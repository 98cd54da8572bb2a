"""The generic ImageFolder dataset: a fixed split written once, independent of the run seed;
class names from folders or a class-name file; its prompt template; few-shot and base/new."""
import json
import os
import random

import pytest

import datasets  # noqa: F401  (registers the datasets)
from mmrl.dassl.data.datasets import DATASET_REGISTRY
from tests.dataset_trees import make_cfg, tiny_image

FOLDERS = ["cat", "golden_retriever", "zebra"]


def make_tree(root, per_class=6):
    """my_pets/<class>/ with mixed image extensions and a stray non-image file."""
    folder = os.path.join(str(root), "my_pets")
    exts = [".jpg", ".PNG", ".jpeg", ".bmp", ".webp", ".tif"]
    for c, name in enumerate(FOLDERS):
        for i in range(per_class):
            tiny_image(os.path.join(folder, name, f"img{i}{exts[i % len(exts)]}"), c * 10 + i)
        with open(os.path.join(folder, name, "notes.txt"), "w") as f:
            f.write("not an image\n")
    return folder


def build(root, **kwargs):
    folder_keys = {k: kwargs.pop(k) for k in list(kwargs) if k.isupper()}
    folder_keys.setdefault("DIR", "my_pets")
    return DATASET_REGISTRY.get("ImageFolder")(make_cfg(root, "ImageFolder", **kwargs, **folder_keys))


def read_split(folder):
    with open(os.path.join(folder, "split_image_folder.json")) as f:
        return json.load(f)


def expected_split(folder, per_class=6, seed=1):
    """The split drawn by hand: per class, sorted file names shuffled by Random(seed), 50/20/30."""
    rng = random.Random(seed)
    out = {"train": [], "val": [], "test": []}
    for label, name in enumerate(FOLDERS):
        files = sorted(f for f in os.listdir(os.path.join(folder, name)) if not f.endswith(".txt"))
        rng.shuffle(files)
        # 6 images: round(3.0) = 3 train, round(1.2) = 1 val, 2 test.
        for key, chunk in (("train", files[:3]), ("val", files[3:4]), ("test", files[4:])):
            out[key] += [[f"{name}/{f}", label, name] for f in chunk]
    return out


def test_split_written_once_and_the_same_for_every_run_seed(tmp_path):
    folder = make_tree(tmp_path)
    random.seed(7)
    state = random.getstate()
    ds = build(tmp_path, seed=1)
    assert random.getstate() == state  # the run's random stream is untouched
    assert ds.classnames == FOLDERS
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (9, 3, 6)
    written = read_split(folder)
    assert written == expected_split(folder)
    with open(os.path.join(folder, "split_image_folder.json")) as f:
        assert f.read().startswith('{\n    "train": [\n        [\n            "cat/')

    mtime = os.path.getmtime(os.path.join(folder, "split_image_folder.json"))
    other = build(tmp_path, seed=2)
    assert [d.impath for d in other.test] == [d.impath for d in ds.test]
    assert os.path.getmtime(os.path.join(folder, "split_image_folder.json")) == mtime


def test_split_seed_changes_the_split(tmp_path):
    folder = make_tree(tmp_path)
    build(tmp_path, SPLIT_SEED=5)
    assert read_split(folder) == expected_split(folder, seed=5)
    assert expected_split(folder, seed=5) != expected_split(folder, seed=1)


def test_template_and_classname_file(tmp_path):
    folder = make_tree(tmp_path)
    with open(os.path.join(folder, "names.txt"), "w") as f:
        f.write("cat house cat\ngolden_retriever golden retriever\nzebra plains zebra\n")
    ds = build(tmp_path, CLASSNAMES="names.txt", TEMPLATE="a photo of my {}.")
    assert ds.classnames == ["house cat", "golden retriever", "plains zebra"]
    assert ds.template == "a photo of my {}."
    assert read_split(folder)["test"][0][2] == "house cat"


def test_default_template_and_underscored_folder_names(tmp_path):
    make_tree(tmp_path)
    ds = build(tmp_path)
    assert ds.template == "a photo of a {}."
    assert "golden_retriever" in ds.classnames


def test_few_shot_and_base_new(tmp_path):
    folder = make_tree(tmp_path)
    fs = build(tmp_path, num_shots=2, seed=4)
    assert len(fs.train_x) == 6 and len(fs.val) == 3
    assert os.path.isfile(os.path.join(folder, "split_fewshot", "shot_2-seed_4.pkl"))
    base = build(tmp_path, subsample="base")
    new = build(tmp_path, subsample="new")
    assert base.classnames == ["cat", "golden_retriever"]
    assert new.classnames == ["zebra"] and {d.label for d in new.test} == {0}


def test_split_fewshot_folder_is_not_a_class(tmp_path):
    folder = make_tree(tmp_path)
    build(tmp_path, num_shots=1)
    os.remove(os.path.join(folder, "split_image_folder.json"))
    assert build(tmp_path).classnames == FOLDERS


def test_errors(tmp_path):
    folder = make_tree(tmp_path)
    with pytest.raises(ValueError, match=r"DATASET.FOLDER.DIR is empty"):
        build(tmp_path, DIR="")
    with pytest.raises(ValueError, match=r"DATASET.FOLDER.TEMPLATE 'my photo' has no '\{\}'"):
        build(tmp_path, TEMPLATE="my photo")
    with pytest.raises(ValueError, match=r"P_TRAIN=0.9 and P_VAL=0.2 must be fractions"):
        build(tmp_path, P_TRAIN=0.9)
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        build(tmp_path, DIR="nowhere")

    with open(os.path.join(folder, "names.txt"), "w") as f:
        f.write("cat house cat\nzebra\n")
    with pytest.raises(ValueError, match=r"names.txt, line 2: 'zebra' is not '<folder> <class name>'"):
        build(tmp_path, CLASSNAMES="names.txt")
    with open(os.path.join(folder, "names.txt"), "w") as f:
        f.write("cat house cat\nzebra zebra\n")
    with pytest.raises(ValueError, match=r"gives no class name for the folder\(s\) golden_retriever"):
        build(tmp_path, CLASSNAMES="names.txt")

    os.makedirs(os.path.join(folder, "empty_class"))
    with pytest.raises(ValueError, match=r"class folder .*empty_class holds no images"):
        build(tmp_path)


def test_too_few_images_for_a_split(tmp_path):
    make_tree(tmp_path, per_class=1)
    with pytest.raises(ValueError, match=r"cat has 1 images, too few for at least one train and one test"):
        build(tmp_path)


def test_a_saved_split_that_no_longer_matches_the_folder_is_reported(tmp_path):
    folder = make_tree(tmp_path)
    build(tmp_path)
    split = os.path.join(folder, "split_image_folder.json")
    for i in range(6):
        tiny_image(os.path.join(folder, "lynx", f"img{i}.jpg"), 100 + i)
    os.rename(os.path.join(folder, "zebra"), os.path.join(tmp_path, "zebra-moved"))
    with pytest.raises(ValueError) as err:
        build(tmp_path)
    assert str(err.value).startswith(f"ImageFolder: the saved split {split} no longer matches {folder}: "
                                     "class folders added since: lynx; class folders in the split but gone: zebra. "
                                     f"To draw a new split, delete {split} and the few-shot caches in ")
    for name in os.listdir(os.path.join(folder, "lynx")):
        os.remove(os.path.join(folder, "lynx", name))
    os.rmdir(os.path.join(folder, "lynx"))
    os.rename(os.path.join(tmp_path, "zebra-moved"), os.path.join(folder, "zebra"))
    with open(os.path.join(folder, "names.txt"), "w") as f:
        f.write("cat house cat\ngolden_retriever golden_retriever\nzebra zebra\n")
    with pytest.raises(ValueError, match="class names differ \\(DATASET.FOLDER.CLASSNAMES\\): 'cat' is 'cat' in the "
                                         "split, 'house cat' now"):
        build(tmp_path, CLASSNAMES="names.txt")
    os.remove(split)  # what the message says: a new split is drawn
    assert build(tmp_path, CLASSNAMES="names.txt").classnames[0] == "house cat"
