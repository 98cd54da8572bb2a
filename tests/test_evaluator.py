"""Classification evaluator: printed block, macro-F1, per-class result, confusion matrix."""
import numpy as np
import pytest
import torch

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.evaluation import (
    Classification,
    build_evaluator,
    confusion_matrix_normalized,
    macro_f1_score,
)
from mmrl.dassl.metrics import compute_accuracy


def _example():
    """1,200 samples: 900 of class 0 right and 100 called 1; 150 of class 1
    right; 50 of class 2 called 0."""
    y_true = [0] * 1000 + [1] * 150 + [2] * 50
    y_pred = [0] * 900 + [1] * 100 + [1] * 150 + [0] * 50
    return torch.tensor(y_true), torch.tensor(y_pred)


def _feed(evaluator, y_true, y_pred, num_classes=3, batch=250):
    logits = torch.nn.functional.one_hot(y_pred, num_classes).float()
    for i in range(0, len(y_true), batch):
        evaluator.process(logits[i:i + batch], y_true[i:i + batch])


def _cfg(tmp_path, **test):
    cfg = get_cfg_default()
    cfg.OUTPUT_DIR = str(tmp_path)
    for k, v in test.items():
        setattr(cfg.TEST, k, v)
    return cfg


def test_result_block_is_byte_exact(tmp_path, capsys):
    ev = build_evaluator(_cfg(tmp_path), lab2cname={0: "a", 1: "b", 2: "c"})
    assert isinstance(ev, Classification)
    _feed(ev, *_example())
    results = ev.evaluate()
    # Class F1s: 0 -> 2*900/(1800+50+100) = 12/13, 1 -> 300/400 = 3/4, 2 -> 0;
    # mean 29/52 = 55.769%.
    assert capsys.readouterr().out == (
        "Loading evaluator: Classification\n"
        "=> result\n"
        "* total: 1,200\n"
        "* correct: 1,050\n"
        "* accuracy: 87.5%\n"
        "* error: 12.5%\n"
        "* macro_f1: 55.8%\n"
    )
    assert list(results) == ["accuracy", "error_rate", "macro_f1"]
    assert results["accuracy"] == 87.5
    assert results["error_rate"] == 12.5
    assert results["macro_f1"] == pytest.approx(100 * 29 / 52)


def test_per_class_result_lines(tmp_path, capsys):
    ev = Classification(_cfg(tmp_path, PER_CLASS_RESULT=True),
                        lab2cname={0: "cat", 1: "dog", 2: "fish"})
    _feed(ev, *_example())
    results = ev.evaluate()
    out = capsys.readouterr().out
    assert out.endswith(
        "=> per-class result\n"
        "* class: 0 (cat)\ttotal: 1,000\tcorrect: 900\tacc: 90.0%\n"
        "* class: 1 (dog)\ttotal: 150\tcorrect: 150\tacc: 100.0%\n"
        "* class: 2 (fish)\ttotal: 50\tcorrect: 0\tacc: 0.0%\n"
        "* average: 63.3%\n"
    )
    assert results["perclass_accuracy"] == pytest.approx(190 / 3)


def test_per_class_needs_lab2cname(tmp_path):
    with pytest.raises(ValueError, match="lab2cname"):
        Classification(_cfg(tmp_path, PER_CLASS_RESULT=True))


def test_reset_clears_counts(tmp_path, capsys):
    ev = Classification(_cfg(tmp_path))
    _feed(ev, *_example())
    ev.reset()
    _feed(ev, torch.tensor([1, 1]), torch.tensor([1, 0]))
    assert ev.evaluate()["accuracy"] == 50.0


def test_macro_f1_ignores_labels_only_predicted():
    # Label 3 is never true: its false positive lowers class 0's recall only.
    # Class 0: tp 1, fn 1 -> F1 2/3; class 1: tp 1 -> F1 1.
    assert macro_f1_score([0, 0, 1], [0, 3, 1]) == pytest.approx((2 / 3 + 1) / 2)


def test_confusion_matrix_saved(tmp_path, capsys):
    ev = Classification(_cfg(tmp_path, COMPUTE_CMAT=True))
    _feed(ev, *_example())
    ev.evaluate()
    path = tmp_path / "cmat.pt"
    assert f"Confusion matrix is saved to {path}" in capsys.readouterr().out
    cmat = torch.load(path, weights_only=False)
    np.testing.assert_allclose(cmat, [[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_confusion_matrix_includes_predicted_only_labels():
    cm = confusion_matrix_normalized([0, 0], [0, 5])
    np.testing.assert_allclose(cm, [[0.5, 0.5], [0.0, 0.0]])


def test_compute_accuracy_topk():
    output = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5], [0.9, 0.05, 0.05]])
    target = torch.tensor([1, 2, 0, 0])
    top1, top2 = compute_accuracy(output, target, topk=(1, 2))
    assert top1.shape == (1,) and top1.item() == 50.0
    assert top2.item() == 75.0
