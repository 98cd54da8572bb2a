"""The protocol scripts, end to end on the built-in demo: base-to-novel for MMRL, MMRL++ and
zero-shot CLIP, then the result table; skipping, FORCE=1 and unfinished runs; bad input."""
import glob
import json
import os
import re
import subprocess
import sys
from typing import Dict, Optional

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAIL = "demo/shots_16/{trainer}/demo/seed1"


def run_script(script: str, *args: str, env: Dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", script, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def final_accuracy(log_path: str) -> Optional[float]:
    value = None
    armed = False
    with open(log_path) as f:
        for line in f:
            line = line.strip()
            armed = armed or line == "=> result"
            match = re.fullmatch(r"\* accuracy: ([\d.]+)%", line)
            if armed and match:
                value = float(match.group(1))
    return value


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Dict[str, str]:
    base = tmp_path_factory.mktemp("scripts")
    out = dict(os.environ)
    out.update(DATA=str(base / "data"), OUTPUT=str(base / "output"), PYTHON=sys.executable, FORCE="0", OPTS="")
    return out


@pytest.fixture(scope="module")
def mmrl_b2n(env) -> Dict[str, str]:
    """MMRL base-to-novel on the demo, seed 1: the train script, then the test script."""
    train = run_script("scripts/mmrl/base2new_train.sh", "demo", "1", env=env)
    test = run_script("scripts/mmrl/base2new_test.sh", "demo", "1", env=env)
    return {"train": train.stdout, "test": test.stdout}


def dirs(env: Dict[str, str], trainer: str):
    root = os.path.join(env["OUTPUT"], "base2new")
    tail = TAIL.format(trainer=trainer)
    return os.path.join(root, "train_base", tail), os.path.join(root, "test_new", tail)


def test_mmrl_base2new_tree_and_logs(env, mmrl_b2n):
    train_dir, test_dir = dirs(env, "MMRL")
    ckpt_dir = os.path.join(train_dir, "MultiModalRepresentationLearner")
    weights = glob.glob(os.path.join(ckpt_dir, "model.pth.tar-*"))
    assert len(weights) == 1
    with open(os.path.join(ckpt_dir, "checkpoint")) as f:
        assert f.read() == os.path.basename(weights[0]) + "\n"
    with open(os.path.join(train_dir, "log.txt")) as f:
        train_log = [line.strip() for line in f]
    assert "Finish training" in train_log
    assert train_log.index("=> result") > train_log.index("Finish training")
    assert f"Checkpoint saved to {weights[0]}" in train_log
    # An eval-only run leaves only its log, its config record and its result.
    assert sorted(os.listdir(test_dir)) == ["config.yaml", "log.txt", "results.json"]
    with open(os.path.join(test_dir, "log.txt")) as f:
        test_log = f.read()
    assert "Finish training" not in test_log and "=> result" in test_log
    assert train_dir in test_log  # the --model-dir argument is echoed in the arguments block

    base, new = final_accuracy(os.path.join(train_dir, "log.txt")), final_accuracy(os.path.join(test_dir, "log.txt"))
    assert re.search(
        rf"^\[MMRL demo seed1 base2new_train\] accuracy {base}% \(\d+s\) -> {re.escape(train_dir)}$",
        mmrl_b2n["train"], re.M,
    )
    assert re.search(
        rf"^\[MMRL demo seed1 base2new_test\] accuracy {new}% \(\d+s\) -> {re.escape(test_dir)}$",
        mmrl_b2n["test"], re.M,
    )
    # The lineage's per-folder summary ran after the seeds.
    assert f"* accuracy: {base:.2f}% +- 0.00%" in mmrl_b2n["train"]
    assert os.path.isfile(os.path.join(os.path.dirname(train_dir), "parse.txt"))


def test_rerun_skips_existing_results(env, mmrl_b2n):
    train_dir, _ = dirs(env, "MMRL")
    proc = run_script("scripts/mmrl/base2new_train.sh", "demo", "1", env=env)
    assert f"Oops! The results exist at {train_dir} (so skip this job)" in proc.stdout
    assert "(existing results)" in proc.stdout
    assert "Running:" not in proc.stdout
    assert sorted(os.listdir(train_dir)) == ["MultiModalRepresentationLearner", "config.yaml", "log.txt",
                                             "results.json", "tensorboard"]


def test_b2n_table_from_the_runs(env, mmrl_b2n):
    train_dir, test_dir = dirs(env, "MMRL")
    base, new = final_accuracy(os.path.join(train_dir, "log.txt")), final_accuracy(os.path.join(test_dir, "log.txt"))
    proc = subprocess.run(
        [sys.executable, "parse_test_res.py", "--table", "b2n", "--trainer", "MMRL", "--format", "json", env["OUTPUT"]],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    rows = {row["dataset"]: row["cells"]["MMRL"] for row in json.loads(proc.stdout)["rows"]}
    assert rows["demo"]["Base"]["mean"] == pytest.approx(base)
    assert rows["demo"]["New"]["mean"] == pytest.approx(new)
    assert rows["demo"]["HM"]["mean"] == pytest.approx(2 * base * new / (base + new))
    assert rows["imagenet"]["Base"] is None


def test_mmrlpp_base2new_with_opts(env):
    # OPTS reach train.py after the protocol's opts (two epochs instead of the config's five).
    run_script("scripts/mmrlpp/base2new_train.sh", "demo", "1", env=dict(env, OPTS="OPTIM.MAX_EPOCH 2"))
    proc = run_script("scripts/mmrlpp/base2new_test.sh", "demo", "1", env=env)
    train_dir, test_dir = dirs(env, "MMRLpp")
    weights = os.listdir(os.path.join(train_dir, "MultiModalRepresentationLearner"))
    assert sorted(weights) == ["checkpoint", "model.pth.tar-2"]
    assert final_accuracy(os.path.join(test_dir, "log.txt")) is not None
    assert "[MMRLpp demo seed1 base2new_test] accuracy" in proc.stdout


def test_zsclip_base2new_and_unfinished_run(env):
    train_dir, test_dir = dirs(env, "ZeroshotCLIP")
    # A crashed earlier run: its folder is not taken for results; its log is kept aside.
    os.makedirs(test_dir)
    with open(os.path.join(test_dir, "log.txt"), "w") as f:
        f.write("** Config **\nEvaluate on the *test* set\nTraceback (most recent call last):\n")
    run_script("scripts/zsclip/base2new_train.sh", "demo", env=env)  # no SEED: seed 1 only
    proc = run_script("scripts/zsclip/base2new_test.sh", "demo", env=env)
    assert f"Unfinished run at {test_dir}" in proc.stdout
    assert len(glob.glob(os.path.join(test_dir, "log.txt.unfinished-*"))) == 1
    assert final_accuracy(os.path.join(test_dir, "log.txt")) is not None
    # Nothing is trained: both sides are eval-only runs that leave only their log, config record and result.
    assert sorted(os.listdir(train_dir)) == ["config.yaml", "log.txt", "results.json"]
    with open(os.path.join(train_dir, "log.txt")) as f:
        assert "Finish training" not in f.read()
    assert not os.path.exists(os.path.join(env["OUTPUT"], "base2new", "train_base", "demo", "shots_16", "ZeroshotCLIP", "demo", "seed2"))


def test_test_script_needs_the_trained_model(env):
    proc = run_script("scripts/mmrl/base2new_test.sh", "demo", "7", env=env, check=False)
    train_dir = os.path.join(env["OUTPUT"], "base2new", "train_base", "demo", "shots_16", "MMRL", "demo", "seed7")
    assert proc.returncode == 1
    assert f"Error: no trained model at {train_dir}: run 'bash scripts/mmrl/base2new_train.sh demo 7' first" in proc.stderr


def test_data_must_be_set_for_real_datasets(env):
    no_data = {k: v for k, v in env.items() if k != "DATA"}
    proc = run_script("scripts/mmrl/base2new_train.sh", "oxford_pets", "1", env=no_data, check=False)
    assert proc.returncode == 1
    assert "Error: DATA is not set: point it at the folder that holds your datasets" in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("demo", "x"), "SEED must be a non-negative integer, got 'x'"),
        (("no_such_set", "1"), "no configs/datasets/no_such_set.yaml: DATASET must be one of:"),
        ((), "usage: bash scripts/mmrl/few_shot.sh DATASET [SEED]"),
    ],
)
def test_bad_arguments(env, args, message):
    proc = run_script("scripts/mmrl/few_shot.sh", *args, env=env, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr


# ---------------------------------------------------------------------------------------------
# FORCE=1, with a stand-in interpreter: the job logic of the scripts, without a real run.

FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python: "train.py ... --output-dir DIR ..." writes a finished log to DIR;
# anything else (the per-folder summary, ...) runs: {others}
[[ $1 == train.py ]] || {others}
while [[ $# -gt 0 ]]; do
    if [[ $1 == --output-dir ]]; then dir=$2; fi
    shift
done
mkdir -p "$dir"
printf 'Finish training\\n=> result\\n* total: 10\\n* correct: 1\\n* accuracy: 12.3%%\\n' > "$dir/log.txt"
"""


def fake_python(path, others: str = "") -> str:
    """A stand-in interpreter at ``path`` (see FAKE_PYTHON); ``others`` is the shell command run
    for anything but train.py (default: the real python, which the scripts' result reader
    ``python -m mmrl.results`` needs). Returns the path."""
    others = others or f'exec {sys.executable} "$@"'
    path.write_text(FAKE_PYTHON.format(others=others))
    path.chmod(0o755)
    return str(path)


def test_force_removes_the_old_folder_and_reruns(tmp_path):
    fake = fake_python(tmp_path / "fake_python")
    output = tmp_path / "output"
    test_dir = output / "base2new" / "test_new" / TAIL.format(trainer="MMRL")
    train_dir = output / "base2new" / "train_base" / TAIL.format(trainer="MMRL")
    train_dir.mkdir(parents=True)
    (train_dir / "log.txt").write_text("Finish training\n=> result\n* accuracy: 50.0%\n")
    test_dir.mkdir(parents=True)
    (test_dir / "log.txt").write_text("=> result\n* accuracy: 40.0%\n")
    (test_dir / "stale_file").write_text("")
    env = dict(os.environ, DATA=str(tmp_path / "data"), OUTPUT=str(output), PYTHON=fake, OPTS="")

    proc = run_script("scripts/mmrl/base2new_test.sh", "demo", "1", env=dict(env, FORCE="0"))
    assert f"Oops! The results exist at {test_dir} (so skip this job)" in proc.stdout
    assert f"[MMRL demo seed1 base2new_test] accuracy 40.0% (existing results) -> {test_dir}" in proc.stdout

    proc = run_script("scripts/mmrl/base2new_test.sh", "demo", "1", env=dict(env, FORCE="1"))
    assert f"FORCE=1: removing {test_dir}" in proc.stdout
    assert "Oops!" not in proc.stdout
    # The new log.txt is the one read: the folder was emptied before the run.
    assert sorted(os.listdir(test_dir)) == ["log.txt"]
    assert re.search(rf"^\[MMRL demo seed1 base2new_test\] accuracy 12.3% \(\d+s\) -> {re.escape(str(test_dir))}$",
                     proc.stdout, re.M)
    assert f"--model-dir {train_dir} --eval-only DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES new TASK B2N" in proc.stdout
