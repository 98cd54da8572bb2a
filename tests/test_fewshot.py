"""Few-shot draw (Dassl's exact subset), the split_fewshot cache and reading lineage pickles."""
import os
import pickle
import random
import subprocess
import sys
import types

import pytest

from mmrl.dassl.data.datasets import Datum, DatasetBase, generate_fewshot_dataset, load_pickle
from mmrl.data.benchmark import load_or_create_fewshot

# label of img0 .. img11; first appearance order of labels: 2, 0, 1
LABELS = [2, 0, 2, 1, 0, 2, 1, 2, 0, 0, 1, 2]


def make_items(root, labels=LABELS, prefix="img"):
    items = []
    for i, label in enumerate(labels):
        path = os.path.join(str(root), f"{prefix}{i}.jpg")
        open(path, "w").close()
        items.append(Datum(impath=path, label=label, classname=f"class{label}"))
    return items


def names(items):
    return [os.path.basename(item.impath) for item in items]


def test_matches_hand_written_draw(tmp_path):
    items = make_items(tmp_path)
    by_name = {os.path.basename(it.impath): it for it in items}
    # groups by label in first-appearance order, items in source order
    g2 = [by_name[f"img{i}.jpg"] for i in (0, 2, 5, 7, 11)]
    g0 = [by_name[f"img{i}.jpg"] for i in (1, 4, 8, 9)]
    g1 = [by_name[f"img{i}.jpg"] for i in (3, 6, 10)]
    for seed in (0, 1, 7):
        random.seed(seed)
        expected = random.sample(g2, 2) + random.sample(g0, 2) + random.sample(g1, 2)
        random.seed(seed)
        assert generate_fewshot_dataset(items, num_shots=2) == expected


def test_literal_subset_for_seed_0(tmp_path, capsys):
    items = make_items(tmp_path)
    random.seed(0)
    out = generate_fewshot_dataset(items, num_shots=2)
    assert names(out) == ["img7.jpg", "img11.jpg", "img1.jpg", "img4.jpg", "img10.jpg", "img6.jpg"]
    assert [it.label for it in out] == [2, 2, 0, 0, 1, 1]
    assert capsys.readouterr().out == "Creating a 2-shot dataset\n"


def test_deterministic_per_seed(tmp_path):
    items = make_items(tmp_path)
    draws = []
    for seed in (3, 3, 4):
        random.seed(seed)
        draws.append(names(generate_fewshot_dataset(items, num_shots=3)))
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]


def test_short_group_kept_whole_or_repeated(tmp_path):
    items = make_items(tmp_path)
    g1 = [it for it in items if it.label == 1]  # 3 items
    random.seed(5)
    out = generate_fewshot_dataset(items, num_shots=4)
    # label 1 has only 3 items: the whole group, in source order, and no draw for it
    assert names(out[-3:]) == ["img3.jpg", "img6.jpg", "img10.jpg"]
    assert len(out) == 4 + 4 + 3

    random.seed(5)
    g2 = [it for it in items if it.label == 2]
    g0 = [it for it in items if it.label == 0]
    expected = random.sample(g2, 4) + random.sample(g0, 4) + random.choices(g1, k=4)
    random.seed(5)
    assert generate_fewshot_dataset(items, num_shots=4, repeat=True) == expected


def test_no_shots_returns_input(tmp_path):
    a = make_items(tmp_path, labels=[0, 1], prefix="a")
    b = make_items(tmp_path, labels=[0], prefix="b")
    assert generate_fewshot_dataset(a, num_shots=-1) is a
    assert generate_fewshot_dataset(a, b, num_shots=0) == (a, b)


def test_several_sources_and_method(tmp_path):
    a = make_items(tmp_path, labels=[1, 0, 1, 0], prefix="a")
    b = make_items(tmp_path, labels=[0, 0, 0], prefix="b")
    random.seed(2)
    out = DatasetBase.generate_fewshot_dataset(None, a, b, num_shots=1)
    assert len(out) == 2 and len(out[0]) == 2 and len(out[1]) == 1
    assert [it.label for it in out[0]] == [1, 0]


def test_val_drawn_with_min_k_4_from_same_stream(tmp_path):
    train = make_items(tmp_path, labels=[0] * 10 + [1] * 10, prefix="t")
    val = make_items(tmp_path, labels=[1] * 6 + [0] * 6, prefix="v")
    cache_dir = str(tmp_path / "split_fewshot")
    random.seed(11)
    got_train, got_val = load_or_create_fewshot(cache_dir, 8, 11, train, val)

    random.seed(11)
    expected_train = random.sample(train[:10], 8) + random.sample(train[10:], 8)
    expected_val = random.sample(val[:6], 4) + random.sample(val[6:], 4)
    assert got_train == expected_train
    assert got_val == expected_val
    assert os.path.isfile(os.path.join(cache_dir, "shot_8-seed_11.pkl"))


def test_cache_is_reread_without_redrawing(tmp_path, capsys):
    train = make_items(tmp_path, labels=[0] * 5 + [1] * 5, prefix="t")
    val = make_items(tmp_path, labels=[0] * 3 + [1] * 3, prefix="v")
    cache_dir = str(tmp_path / "split_fewshot")
    random.seed(1)
    first = load_or_create_fewshot(cache_dir, 2, 1, train, val)
    path = os.path.join(cache_dir, "shot_2-seed_1.pkl")
    assert f"Saving preprocessed few-shot data to {path}" in capsys.readouterr().out

    random.seed(999)
    state = random.getstate()
    second = load_or_create_fewshot(cache_dir, 2, 1, train, val)
    assert random.getstate() == state  # nothing drawn
    assert capsys.readouterr().out == f"Loading preprocessed few-shot data from {path}\n"
    assert names(second[0]) == names(first[0]) and names(second[1]) == names(first[1])

    data = load_pickle(path)
    assert sorted(data) == ["train", "val"]


def test_train_only_cache(tmp_path):
    train = make_items(tmp_path, labels=[0, 0, 1, 1], prefix="t")
    cache_dir = str(tmp_path / "split_fewshot")
    random.seed(0)
    got_train, got_val = load_or_create_fewshot(cache_dir, 1, -1, train, None)
    assert got_val is None and len(got_train) == 2
    data = load_pickle(os.path.join(cache_dir, "shot_1-seed_-1.pkl"))
    assert sorted(data) == ["train"]
    assert load_or_create_fewshot(cache_dir, 1, -1, train, None)[1] is None


def test_reads_pickle_written_by_dassl(tmp_path):
    img = tmp_path / "cat.jpg"
    img.write_bytes(b"")
    module_names = ["dassl", "dassl.data", "dassl.data.datasets", "dassl.data.datasets.base_dataset"]
    fake = types.ModuleType("dassl.data.datasets.base_dataset")

    class FakeDatum:  # the attribute layout of Dassl's Datum
        def __init__(self, impath, label, classname):
            self._impath, self._label, self._domain, self._classname = impath, label, 0, classname

    FakeDatum.__name__ = FakeDatum.__qualname__ = "Datum"
    FakeDatum.__module__ = fake.__name__
    fake.Datum = FakeDatum
    saved = {name: sys.modules.get(name) for name in module_names}  # the engine's stand-ins
    for name in module_names:
        sys.modules[name] = fake if name == fake.__name__ else types.ModuleType(name)
    try:
        payload = pickle.dumps({"train": [FakeDatum(str(img), 3, "cat")], "val": []}, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module
    assert b"dassl.data.datasets.base_dataset" in payload

    cache_dir = tmp_path / "split_fewshot"
    cache_dir.mkdir()
    (cache_dir / "shot_16-seed_2.pkl").write_bytes(payload)
    train, val = load_or_create_fewshot(str(cache_dir), 16, 2, [], [])
    assert val == []
    (item,) = train
    assert isinstance(item, Datum)
    assert (item.impath, item.label, item.domain, item.classname) == (str(img), 3, 0, "cat")


# A minimal Dassl: the package path and the Datum class of Dassl.pytorch, nothing else.
FAKE_DASSL_DATUM = """
class Datum:
    def __init__(self, impath="", label=0, domain=0, classname=""):
        self._impath, self._label, self._domain, self._classname = impath, label, domain, classname
"""
# Run with only the fake Dassl on the path (no site-packages, so no mmrl): write or read a cache
# with plain pickle, as Dassl's dataset code does.
ON_REAL_DASSL = """
import pickle, sys
sys.path.insert(0, sys.argv[1])
from dassl.data.datasets.base_dataset import Datum
try:
    import mmrl
    raise SystemExit("mmrl is importable here")
except ImportError:
    pass
if sys.argv[2] == "write":
    data = {"train": [Datum(line.split()[0], int(line.split()[1]), 0, line.split()[2]) for line in sys.argv[4:]], "val": []}
    with open(sys.argv[3], "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
else:
    with open(sys.argv[3], "rb") as f:
        data = pickle.load(f)
    for d in data["train"]:
        assert type(d) is Datum
        print(d._impath, d._label, d._classname)
"""


class LineageStyleDataset(DatasetBase):
    """Few-shot block of the lineage's dataset files (CoOp's OxfordPets and the others), ported
    with the ``mmrl.dassl`` import prefix: it pickles the draw itself, with plain ``pickle``."""

    def __init__(self, root, items, num_shots, seed):
        preprocessed = os.path.join(root, "split_fewshot", f"shot_{num_shots}-seed_{seed}.pkl")
        if os.path.exists(preprocessed):
            with open(preprocessed, "rb") as file:
                data = pickle.load(file)
                train = data["train"]
        else:
            train = self.generate_fewshot_dataset(items, num_shots=num_shots)
            os.makedirs(os.path.dirname(preprocessed), exist_ok=True)
            with open(preprocessed, "wb") as file:
                pickle.dump({"train": train, "val": []}, file, protocol=pickle.HIGHEST_PROTOCOL)
        super().__init__(train_x=train, val=[], test=items)


def _fake_dassl(tmp_path) -> str:
    package = tmp_path / "fake-dassl" / "dassl" / "data" / "datasets"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("")
    (package / "base_dataset.py").write_text(FAKE_DASSL_DATUM)
    return str(tmp_path / "fake-dassl")


def _on_real_dassl(fake: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", ON_REAL_DASSL, fake, *args], capture_output=True,
                          text=True, timeout=60, cwd=fake)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_lineage_dataset_code_caches_read_both_ways_with_plain_pickle(tmp_path):
    fake = _fake_dassl(tmp_path)
    items = make_items(tmp_path)
    # Written here by the lineage's code, read by Dassl: the pickle names Dassl's class, not mmrl's.
    random.seed(1)
    ours = LineageStyleDataset(str(tmp_path / "a"), items, 2, 1)
    cache = tmp_path / "a" / "split_fewshot" / "shot_2-seed_1.pkl"
    assert b"dassl.data.datasets.base_dataset" in cache.read_bytes() and b"mmrl" not in cache.read_bytes()
    read = _on_real_dassl(fake, "read", str(cache)).splitlines()
    assert read == [f"{d.impath} {d.label} {d.classname}" for d in ours.train_x]
    # ... and read back here by the same code: no draw, the same items.
    random.seed(99)
    again = LineageStyleDataset(str(tmp_path / "a"), items, 2, 1)
    assert [(d.impath, d.label) for d in again.train_x] == [(d.impath, d.label) for d in ours.train_x]
    assert all(type(d) is Datum for d in again.train_x)
    # Written by Dassl, read here by the lineage's code.
    theirs = tmp_path / "b" / "split_fewshot" / "shot_1-seed_1.pkl"
    theirs.parent.mkdir(parents=True)
    _on_real_dassl(fake, "write", str(theirs), *(f"{d.impath} {d.label} {d.classname}" for d in items[:3]))
    loaded = LineageStyleDataset(str(tmp_path / "b"), items, 1, 1)
    assert all(type(d) is Datum for d in loaded.train_x)
    assert [(d.impath, d.label, d.domain, d.classname) for d in loaded.train_x] == [
        (d.impath, d.label, 0, d.classname) for d in items[:3]]
    # The stand-in module path holds Datum only: Dassl's other modules are still absent.
    with pytest.raises(ModuleNotFoundError):
        __import__("dassl.engine")


def test_corrupt_cache_names_file(tmp_path):
    cache_dir = tmp_path / "split_fewshot"
    cache_dir.mkdir()
    bad = cache_dir / "shot_1-seed_1.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="shot_1-seed_1.pkl"):
        load_or_create_fewshot(str(cache_dir), 1, 1, [], [])
