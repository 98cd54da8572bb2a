"""Running averages printed in the training log line."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Optional, Union

import torch

Number = Union[int, float, torch.Tensor]


class AverageMeter:
    """Latest value and (exponential) running average of a scalar."""

    def __init__(self, ema: bool = False) -> None:
        self.ema = ema
        self.reset()

    def reset(self) -> None:
        self.val = 0.0
        self.avg = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val: Number, n: int = 1) -> None:
        if isinstance(val, torch.Tensor):
            val = val.item()
        self.val = val
        self.sum += val * n
        self.count += n
        if self.ema:
            self.avg = self.avg * 0.9 + self.val * 0.1
        else:
            self.avg = self.sum / self.count


class MetricMeter:
    """A named group of AverageMeters, printed as ``name val (avg)`` pairs."""

    def __init__(self, delimiter: str = " ") -> None:
        self.meters: Dict[str, AverageMeter] = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict: Optional[Dict[str, Number]]) -> None:
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError(
                "Input to MetricMeter.update() must be a dictionary, "
                f"got {type(input_dict).__name__}"
            )
        for k, v in input_dict.items():
            if isinstance(v, torch.Tensor):
                v = v.item()
            self.meters[k].update(v)

    def __str__(self) -> str:
        return self.delimiter.join(
            f"{name} {meter.val:.4f} ({meter.avg:.4f})"
            for name, meter in self.meters.items()
        )
