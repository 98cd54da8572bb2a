"""No silent wrong result: a checkpoint records its config and backbone and refuses to continue or
be evaluated under other ones; --resume of a missing folder is an error; few-shot caches follow a
moved data root, are readable by Dassl's own code, and say when a class has fewer images than
NUM_SHOTS; files follow the user's umask."""
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import types

import pytest

import datasets  # noqa: F401  (registers the datasets)
from mmrl.config import build_parser, default_cfg, setup_cfg
from mmrl.dassl.config import CONFIG_RECORD_FILE, get_cfg_default, load_config_record
from mmrl.dassl.data.datasets import build_dataset
from mmrl.dassl.engine.preflight import check_resume_dir
from mmrl.dassl.utils import load_checkpoint
from mmrl.demo.clip import write_mini_clip
from tests.train_runs import DEMO, REPO, SHORT, assert_clean_error, checkpoint_dir, copy_run, newest_log, train


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("silent")
    root, out = base / "data", base / "run"
    done = train(root, out, *SHORT)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, out


def _cfg(root, *extra):
    args = [a if not a.startswith("configs/") else os.path.join(REPO, a) for a in DEMO]
    return setup_cfg(build_parser().parse_args(["--root", str(root), *args, *map(str, extra)]))


def test_config_record_reloads_into_the_same_config(finished):
    root, out = finished
    path = os.path.join(str(out), CONFIG_RECORD_FILE)
    cfg = _cfg(root, "--output-dir", str(out), *SHORT)
    assert load_config_record(path, default_cfg("MMRL")) == cfg
    checkpoint = load_checkpoint(os.path.join(checkpoint_dir(out), "model.pth.tar-2"))
    with open(path) as f:
        assert checkpoint["config"] == f.read()
    assert checkpoint["backbone"] == "mini-random" and len(checkpoint["backbone_sha1"]) == 40


def test_rerun_under_another_config_is_refused_unless_forced(finished, tmp_path):
    root, out = finished
    run = copy_run(out, tmp_path / "run")
    checkpoint = os.path.join(checkpoint_dir(run), "model.pth.tar-2")
    before = open(checkpoint, "rb").read(), open(os.path.join(run, CONFIG_RECORD_FILE)).read()

    done = train(root, run, *SHORT, "OPTIM.LR", "0.002", "TRAINER.MMRL.N_REP_TOKENS", "3")
    message = assert_clean_error(done, 1, checkpoint, "OPTIM.LR: 0.001 in the checkpoint, 0.002 now",
                                 "TRAINER.MMRL.N_REP_TOKENS: 5 in the checkpoint, 3 now", "--force",
                                 "MMRL_FORCE=1")
    assert "another --output-dir" in message
    assert "* accuracy" not in done.stdout
    assert (open(checkpoint, "rb").read(), open(os.path.join(run, CONFIG_RECORD_FILE)).read()) == before

    # The override a lineage train.py (no --force flag) can use; --force sets the same switch.
    done = train(root, run, *SHORT, "OPTIM.LR", "0.002", env={"MMRL_FORCE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    log = newest_log(run)
    assert "under a different config (--force or MMRL_FORCE=1): OPTIM.LR: 0.001 in the checkpoint, 0.002 now" in log
    assert "* accuracy:" in log


def test_resume_of_a_missing_folder_is_an_error(finished, tmp_path):
    root, _ = finished
    missing = tmp_path / "no-such-run"
    done = train(root, tmp_path / "out", "--resume", str(missing), *SHORT)
    assert_clean_error(done, 1, f'--resume "{missing}" does not exist')
    assert not (tmp_path / "out").exists()
    # A regular file is said to be a file (the same check, before anything runs).
    cfg = get_cfg_default()
    cfg.RESUME = str(root / "demo" / "split_demo.json")
    with pytest.raises(NotADirectoryError, match=f'^--resume "{cfg.RESUME}" is a file, not a run folder'):
        check_resume_dir(cfg)

    # A folder that exists but holds no checkpoint is no resume either.
    missing.mkdir()
    done = train(root, tmp_path / "out", "--resume", str(missing), *SHORT)
    assert_clean_error(done, 1, f'--resume "{missing}" holds no checkpoint')
    assert "epoch [" not in done.stdout


def test_evaluating_with_another_backbone_is_refused_unless_forced(finished, tmp_path):
    root, out = finished
    # Another random mini CLIP: the same widths, so its weights would load without a word.
    other = str(write_mini_clip(tmp_path / "other-mini.pt", seed=1))
    eval_args = ["--eval-only", "--model-dir", str(out), *SHORT, "MODEL.BACKBONE.PATH", other]
    done = train(root, tmp_path / "eval", *eval_args)
    assert_clean_error(done, 1, "model.pth.tar-2", "was trained on another backbone: backbone_sha1", "--force")
    assert "* accuracy" not in done.stdout

    done = train(root, tmp_path / "forced", "--force", *eval_args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "was trained on another backbone" in done.stdout and "* accuracy:" in done.stdout


def test_fewshot_cache_follows_a_moved_data_root(tmp_path, capsys):
    first = tmp_path / "first"
    drawn = build_dataset(_cfg(first, "DATASET.NUM_SHOTS", "2")).train_x
    cache = first / "demo" / "split_fewshot" / "shot_2-seed_1.pkl"
    assert b"_relpath" in cache.read_bytes()

    moved = tmp_path / "moved"
    os.rename(first, moved)
    capsys.readouterr()
    again = build_dataset(_cfg(moved, "DATASET.NUM_SHOTS", "2")).train_x
    assert "Loading preprocessed few-shot data" in capsys.readouterr().out
    assert [d.impath for d in again] == [d.impath.replace(str(first), str(moved)) for d in drawn]
    assert all(os.path.isfile(d.impath) for d in again)

    # A cache of the reference (absolute paths only, Dassl's class) made on another root is re-rooted.
    names = ["dassl", "dassl.data", "dassl.data.datasets", "dassl.data.datasets.base_dataset"]
    fake = types.ModuleType(names[-1])

    class Datum:  # the attribute layout of Dassl's Datum
        pass

    Datum.__module__, Datum.__qualname__ = fake.__name__, "Datum"
    fake.Datum = Datum
    for name in names:
        sys.modules[name] = fake if name == fake.__name__ else types.ModuleType(name)
    try:
        items = []
        for d in again:
            item = Datum()
            item.__dict__.update(_impath=d.impath.replace(str(moved), "/old/root"), _label=d.label,
                                 _domain=0, _classname=d.classname)
            items.append(item)
        payload = pickle.dumps({"train": items, "val": items}, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for name in names:
            del sys.modules[name]
    (moved / "demo" / "split_fewshot" / "shot_3-seed_1.pkl").write_bytes(payload)
    reference = build_dataset(_cfg(moved, "DATASET.NUM_SHOTS", "3")).train_x
    assert "were written under /old/root/demo: reading them from " + str(moved / "demo") in capsys.readouterr().out
    assert [d.impath for d in reference] == [d.impath for d in again]


DASSL_DATUM = '''
class Datum:
    def __init__(self, impath="", label=0, domain=0, classname=""):
        self._impath, self._label, self._domain, self._classname = impath, label, domain, classname

    @property
    def impath(self):
        return self._impath

    @property
    def label(self):
        return self._label
'''


def test_dassl_own_code_reads_our_caches(tmp_path):
    build_dataset(_cfg(tmp_path / "data", "DATASET.NUM_SHOTS", "2"))
    cache = tmp_path / "data" / "demo" / "split_fewshot" / "shot_2-seed_1.pkl"
    # Dassl's package as its own code sees it, and no mmrl on the path.
    package = tmp_path / "dassl-install" / "dassl" / "data" / "datasets"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("")
    (package / "base_dataset.py").write_text(DASSL_DATUM)
    script = textwrap.dedent(f"""
        import os, pickle, sys
        assert "mmrl" not in sys.modules
        with open({str(cache)!r}, "rb") as f:
            data = pickle.load(f)
        item = data["train"][0]
        print(type(item).__module__, len(data["train"]), len(data["val"]), os.path.isfile(item.impath))
    """)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "dassl-install"))
    done = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["dassl.data.datasets.base_dataset", "20", "20", "True"]


def test_more_shots_than_images_is_said(tmp_path, capsys):
    build_dataset(_cfg(tmp_path / "data", "DATASET.NUM_SHOTS", "50"))
    out = capsys.readouterr().out
    assert "Creating a 50-shot dataset" in out
    assert "10 of 10 classes have fewer than 50 images and use all they have: red_circle (12), " in out
    build_dataset(_cfg(tmp_path / "data", "DATASET.NUM_SHOTS", "50"))
    assert "10 of 10 classes of train have fewer than 50 images" in capsys.readouterr().out


def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        build_dataset(_cfg(tmp_path / "data", "DATASET.NUM_SHOTS", "2"))
    finally:
        os.umask(previous)
    for path in (tmp_path / "data" / "demo" / "split_demo.json",
                 tmp_path / "data" / "demo" / "split_fewshot" / "shot_2-seed_1.pkl"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o664, path
