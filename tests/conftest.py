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


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped, with the reason shown (pytest.ini's -ra), where CUDA is absent."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
