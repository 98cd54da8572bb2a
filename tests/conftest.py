"""Shared fixtures: a miniature random CLIP (see mmrl.demo.clip.MINI_SPEC).

- ``mini_clip``: session-scoped, frozen fp32 CLIP from ``build_mini_clip(0)``. Shared by many
  tests: do not modify its weights.
- ``mini_clip_file``: that CLIP's plain state dict written to a temporary file (a Path).
- Every session gets its own ``MMRL_CACHE`` directory, so backbone "mini-random" never writes
  to the user's home.
- Tests marked ``slurm`` run only where a SLURM answers (``sinfo``) and submitit is installed;
  elsewhere they are skipped with the reason, except under CI (``CI`` set), where that is an
  error: CI starts its own SLURM on the machine (scripts/ci/start_slurm.sh).
"""
import functools
import os
import shutil
import subprocess
from typing import Optional

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


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped, with the reason shown (pytest.ini's -ra), where CUDA is absent."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@functools.lru_cache(maxsize=None)
def slurm_unusable() -> Optional[str]:
    """Why the tests cannot submit SLURM jobs here (None when they can)."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no SLURM commands (sbatch, sinfo) on the PATH"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return f"sinfo cannot reach a SLURM controller ({last})"
    states = {state.rstrip("*~#") for state in proc.stdout.split()}
    if not states & {"idle", "mixed", "allocated", "completing"}:
        return f"no SLURM node is up (sinfo: {' '.join(sorted(states)) or 'no nodes'})"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install -e '.[slurm]')"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is None:
        return
    reason = slurm_unusable()
    if reason is None:
        return
    hint = "start a SLURM on this machine with `sudo bash scripts/ci/start_slurm.sh` and export the SLURM_CONF it prints"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set but SLURM is not usable: {reason}; {hint}", pytrace=False)
    pytest.skip(f"no SLURM reachable: {reason} ({hint})")


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
