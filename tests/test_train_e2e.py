"""train.py end to end, as a user runs it, on the demo with the miniature random CLIP."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train(*argv, check=True):
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_zero_shot_eval_writes_log_with_accuracy_lines(root, tmp_path):
    out = tmp_path / "zs"
    proc = run_train("--root", str(root), "--seed", "1", "--trainer", "ZeroshotCLIP",
                     "--dataset-config-file", "configs/datasets/demo.yaml",
                     "--config-file", "configs/trainers/ZeroshotCLIP/demo.yaml",
                     "--output-dir", str(out), "--eval-only", "DATASET.SUBSAMPLE_CLASSES", "base")
    log = (out / "log.txt").read_text()
    for line in ("** Arguments **", "** Config **", "** System info **", "Loading trainer: ZeroshotCLIP",
                 "Loading dataset: SyntheticDemo", "Evaluate on the *test* set", "=> result"):
        assert line in log, line
    assert re.search(r"^\* total: \d+$", log, re.M)
    assert re.search(r"^\* correct: \d+$", log, re.M)
    assert re.search(r"^\* accuracy: \d+\.\d%$", log, re.M)
    assert re.search(r"^\* error: \d+\.\d%$", log, re.M)
    assert re.search(r"^\* macro_f1: \d+\.\d%$", log, re.M)
    assert "randomly initialised" in proc.stdout.lower()
    assert "Setting fixed seed: 1" in proc.stdout and "Setting fixed seed" not in log


def test_base_to_novel_train_then_test_new(root, tmp_path):
    common = ["--root", str(root), "--seed", "1", "--trainer", "MMRL",
              "--dataset-config-file", "configs/datasets/demo.yaml",
              "--config-file", "configs/trainers/MMRL/demo.yaml"]
    train_dir, test_dir = tmp_path / "train_base", tmp_path / "test_new"
    run_train(*common, "--output-dir", str(train_dir), "DATASET.NUM_SHOTS", "16", "OPTIM.MAX_EPOCH", "2",
              "DATASET.SUBSAMPLE_CLASSES", "base", "TASK", "B2N")
    train_log = (train_dir / "log.txt").read_text()
    assert "Finish training" in train_log and "Deploy the last-epoch model" in train_log
    # The demo has no per-dataset values; the line says so in the log.
    assert "Per-dataset values for SyntheticDemo (B2N): none" in train_log.splitlines()
    assert re.search(r"epoch \[2/2\] batch \[\d+/\d+\] time [\d.]+ \([\d.]+\) data [\d.]+ \([\d.]+\) "
                     r"loss [\d.]+ \([\d.]+\) acc [\d.]+ \([\d.]+\) lr [\d.]+e[-+]\d+ eta \d+:\d\d:\d\d",
                     train_log)
    assert (train_dir / "MultiModalRepresentationLearner" / "model.pth.tar-2").is_file()

    run_train(*common, "--output-dir", str(test_dir), "--model-dir", str(train_dir), "--eval-only",
              "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new", "TASK", "B2N")
    test_log = (test_dir / "log.txt").read_text()
    assert "Scoring the class logits (TASK B2N)" in test_log
    assert re.search(r"^\* accuracy: \d+\.\d%$", test_log, re.M)
    assert sorted(os.listdir(test_dir)) == ["config.yaml", "log.txt", "results.json"]


def test_config_error_is_reported_without_traceback(root, tmp_path):
    proc = run_train("--root", str(root), "--trainer", "MMRL", "--output-dir", str(tmp_path),
                     "TRAINER.MMRL.NO_SUCH_KEY", "1", check=False)
    assert proc.returncode == 2
    assert "TRAINER.MMRL.NO_SUCH_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_image_size_is_explained(root, tmp_path):
    proc = run_train("--root", str(root), "--trainer", "ZeroshotCLIP", "--output-dir", str(tmp_path),
                     "--dataset-config-file", "configs/datasets/demo.yaml",
                     "--config-file", "configs/trainers/ZeroshotCLIP/demo.yaml", "--eval-only",
                     "INPUT.SIZE", "(64, 64)", check=False)
    assert proc.returncode != 0
    assert "INPUT.SIZE (32, 32)" in proc.stderr
