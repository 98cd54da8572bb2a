"""Shared fixtures: a miniature random CLIP (see mmrl.demo.clip.MINI_SPEC).

- ``mini_clip``: session-scoped, frozen fp32 CLIP from ``build_mini_clip(0)``. Shared by many
  tests: do not modify its weights.
- ``mini_clip_file``: that CLIP's plain state dict written to a temporary file (a Path).
- Every session gets its own ``MMRL_CACHE`` directory, so backbone "mini-random" never writes
  to the user's home.
"""
import os

import pytest
import torch

from mmrl.demo.clip import build_mini_clip


@pytest.fixture(scope="session", autouse=True)
def _isolated_mmrl_cache(tmp_path_factory):
    previous = os.environ.get("MMRL_CACHE")
    os.environ["MMRL_CACHE"] = str(tmp_path_factory.mktemp("mmrl-cache"))
    yield
    if previous is None:
        os.environ.pop("MMRL_CACHE", None)
    else:
        os.environ["MMRL_CACHE"] = previous


@pytest.fixture(scope="session")
def mini_clip():
    model = build_mini_clip(0)
    model.requires_grad_(False)
    return model


@pytest.fixture
def mini_clip_file(mini_clip, tmp_path):
    path = tmp_path / "mini-clip.pt"
    torch.save(mini_clip.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One real ``train.py`` run of MMRL on the demo (base classes, 4 shots, 1 epoch), shared by the
    tests of trained-model use and of run results: (data root, output folder)."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = tmp_path_factory.mktemp("demo-data")
    out = tmp_path_factory.mktemp("demo-run") / "seed1"
    argv = [sys.executable, "train.py", "--root", str(root), "--seed", "1", "--trainer", "MMRL",
            "--dataset-config-file", "configs/datasets/demo.yaml", "--config-file", "configs/trainers/MMRL/demo.yaml",
            "--output-dir", str(out), "DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "1",
            "DATASET.SUBSAMPLE_CLASSES", "base", "TASK", "B2N"]
    proc = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, out
