"""Classification evaluator: accuracy, error, macro-F1, per-class results."""
from __future__ import annotations

import os.path as osp
from collections import OrderedDict, defaultdict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..utils import Registry, check_availability
from ..utils.distributed import is_main_process

EVALUATOR_REGISTRY = Registry("EVALUATOR")


def build_evaluator(cfg: Any, **kwargs: Any) -> "EvaluatorBase":
    """Instantiate ``cfg.TEST.EVALUATOR`` (extra kwargs, e.g. lab2cname, pass through)."""
    avai_evaluators = EVALUATOR_REGISTRY.registered_names()
    check_availability(cfg.TEST.EVALUATOR, avai_evaluators)
    if cfg.VERBOSE:
        print(f"Loading evaluator: {cfg.TEST.EVALUATOR}")
    return EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)


def macro_f1_score(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Mean F1 over the labels present in ``y_true`` (sklearn's
    ``f1_score(average="macro", labels=np.unique(y_true))``), in [0, 1]."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.size == 0:
        return 0.0
    scores = []
    for label in np.unique(t):
        tp = np.sum((p == label) & (t == label))
        fp = np.sum((p == label) & (t != label))
        fn = np.sum((p != label) & (t == label))
        # 2TP / (2TP + FP + FN) equals 2PR / (P + R); fn + tp > 0 since label is in y_true.
        scores.append(2.0 * tp / (2.0 * tp + fp + fn))
    return float(np.mean(scores))


def confusion_matrix_normalized(
    y_true: Sequence[int], y_pred: Sequence[int]
) -> np.ndarray:
    """Row-normalised confusion matrix over the sorted union of labels
    (sklearn's ``confusion_matrix(normalize="true")``); empty rows stay 0."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    labels = np.unique(np.concatenate([t, p]))
    index = {int(lab): i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for a, b in zip(t.tolist(), p.tolist()):
        cm[index[int(a)], index[int(b)]] += 1
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        cm = np.where(rows > 0, cm / np.where(rows > 0, rows, 1), 0.0)
    return cm


class EvaluatorBase:
    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        raise NotImplementedError

    def evaluate(self) -> "OrderedDict[str, float]":
        raise NotImplementedError


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Accumulates predictions over batches and prints Dassl's result block."""

    def __init__(
        self, cfg: Any, lab2cname: Optional[Dict[int, str]] = None, **kwargs: Any
    ) -> None:
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._correct = 0
        self._total = 0
        self._per_class_res: Optional[Dict[int, List[int]]] = None
        self._y_true: List[int] = []
        self._y_pred: List[int] = []
        if cfg.TEST.PER_CLASS_RESULT:
            if lab2cname is None:
                raise ValueError(
                    "TEST.PER_CLASS_RESULT is True but no lab2cname was given "
                    "to the evaluator"
                )
            self._per_class_res = defaultdict(list)

    @property
    def total(self) -> int:
        return self._total

    @property
    def correct(self) -> int:
        return self._correct

    def reset(self) -> None:
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []
        if self._per_class_res is not None:
            self._per_class_res = defaultdict(list)

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        """mo: [B, C] scores; gt: [B] labels."""
        pred = mo.max(1)[1]
        matches = pred.eq(gt).float()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.detach().cpu().numpy().tolist())
        self._y_pred.extend(pred.detach().cpu().numpy().tolist())
        if self._per_class_res is not None:
            for i, label in enumerate(gt):
                self._per_class_res[int(label.item())].append(int(matches[i].item()))

    def evaluate(self) -> "OrderedDict[str, float]":
        results: "OrderedDict[str, float]" = OrderedDict()
        if self._total == 0:
            raise RuntimeError(
                "The evaluator received no samples; check that the evaluation "
                "data loader is not empty"
            )
        acc = 100.0 * self._correct / self._total
        err = 100.0 - acc
        macro_f1 = 100.0 * macro_f1_score(self._y_true, self._y_pred)
        results["accuracy"] = acc
        results["error_rate"] = err
        results["macro_f1"] = macro_f1
        print(
            "=> result\n"
            f"* total: {self._total:,}\n"
            f"* correct: {self._correct:,}\n"
            f"* accuracy: {acc:.1f}%\n"
            f"* error: {err:.1f}%\n"
            f"* macro_f1: {macro_f1:.1f}%"
        )

        if self._per_class_res is not None:
            labels = sorted(self._per_class_res.keys())
            print("=> per-class result")
            accs = []
            for label in labels:
                classname = self._lab2cname[label]
                res = self._per_class_res[label]
                correct = sum(res)
                total = len(res)
                class_acc = 100.0 * correct / total
                accs.append(class_acc)
                print(
                    f"* class: {label} ({classname})\t"
                    f"total: {total:,}\t"
                    f"correct: {correct:,}\t"
                    f"acc: {class_acc:.1f}%"
                )
            mean_acc = float(np.mean(accs))
            print(f"* average: {mean_acc:.1f}%")
            results["perclass_accuracy"] = mean_acc

        if self.cfg.TEST.COMPUTE_CMAT and is_main_process():
            cmat = confusion_matrix_normalized(self._y_true, self._y_pred)
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(cmat, save_path)
            print(f"Confusion matrix is saved to {save_path}")

        return results
