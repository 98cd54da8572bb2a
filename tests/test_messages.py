"""Messages name the right thing: config keys as the user writes them, the missing argument, a
flag placed after the KEY VALUE options, the split file and entry of a bad label; a damaged mini
CLIP cache is rewritten; torch's advice to load files with weights_only=False never reaches users."""
import json
import os
import subprocess
import sys

import pytest

from mmrl.dassl.utils import load_checkpoint
from mmrl.dassl.utils.torchtools import CheckpointError
from mmrl.demo.clip import MINI_FILE_NAME
from mmrl.demo.images import make_demo_images
from mmrl.model.clip_loader import load_clip
from tests.train_runs import DEMO, REPO, SHORT, assert_clean_error, train


def _train_py(*args, env=None):
    return subprocess.run([sys.executable, "train.py", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env=env)


def test_config_values_are_named_by_their_config_key(tmp_path):
    done = train(tmp_path / "data", tmp_path / "out", *SHORT, "TRAINER.MMRL.N_REP_TOKENS", "0")
    assert_clean_error(done, 1, "TRAINER.MMRL.N_REP_TOKENS must be at least 1, got 0")


def test_missing_trainer_or_config_file_is_named(tmp_path):
    done = _train_py("--root", tmp_path, "--output-dir", tmp_path / "out",
                     "--dataset-config-file", "configs/datasets/demo.yaml")
    assert_clean_error(done, 2, "--trainer is missing")
    done = _train_py("--root", tmp_path, "--output-dir", tmp_path / "out", "--trainer", "MMRL",
                     "--dataset-config-file", "configs/datasets/demo.yaml")
    assert_clean_error(done, 2, "--config-file is missing", "configs/trainers/MMRL/vit_b16.yaml")
    assert not (tmp_path / "out").exists()


def test_flag_after_the_options_is_recognised(tmp_path):
    done = _train_py("--root", tmp_path, *DEMO, "--output-dir", tmp_path / "out", "DATASET.NUM_SHOTS", "4",
                     "--eval-only")
    assert_clean_error(done, 2, "the flag --eval-only comes after the KEY VALUE options", "move it before them")


def test_bad_label_in_a_split_file_names_file_and_entry(tmp_path):
    make_demo_images(str(tmp_path / "data" / "demo"))
    split_file = tmp_path / "data" / "demo" / "split_demo.json"
    split = json.loads(split_file.read_text())
    split["val"][2][1] = "seven"
    split_file.write_text(json.dumps(split))
    done = train(tmp_path / "data", tmp_path / "out", *SHORT)
    assert_clean_error(done, 1, f"Split file {split_file}: val[2]", "label 'seven'", "not an integer")


def test_damaged_mini_clip_cache_is_written_again(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / MINI_FILE_NAME).write_bytes(b"PK\x03\x04 cut short")
    env = dict(os.environ, MMRL_CACHE=str(cache))
    done = _train_py("--root", tmp_path / "data", "--trainer", "ZeroshotCLIP", "--output-dir", tmp_path / "out",
                     "--dataset-config-file", "configs/datasets/demo.yaml",
                     "--config-file", "configs/trainers/ZeroshotCLIP/demo.yaml", "--eval-only", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "The cached mini-random weights are damaged" in done.stdout and "writing them again" in done.stdout
    assert "* accuracy:" in done.stdout
    assert (cache / MINI_FILE_NAME).stat().st_size > 100_000


def test_torch_advice_on_unsafe_loading_is_not_passed_on(tmp_path):
    garbage = tmp_path / "model.pth.tar-1"
    garbage.write_bytes(b"\x80\x02 these are not the tensors you are looking for")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(str(garbage))
    assert str(garbage) in str(info.value) and "weights_only" not in str(info.value)
    with pytest.raises(ValueError) as info:
        load_clip("mini-random", path=str(garbage))
    assert "is not CLIP weights" in str(info.value) and "weights_only" not in str(info.value)
    assert "delete it and fetch it again" in str(info.value)
