"""MMRL and MMRL++ on a frozen CLIP. ``mmrl.load(run_dir)`` gives a trained model that classifies images."""
from typing import Any


def load(run_dir: str, **kwargs: Any) -> "mmrl.predict.Predictor":  # noqa: F821
    """The model a training run saved in ``run_dir``, ready to ``predict`` images (see mmrl.predict.load)."""
    from mmrl.predict import load as _load

    return _load(run_dir, **kwargs)
