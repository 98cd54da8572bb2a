"""Top-k accuracy."""
from __future__ import annotations

from typing import List, Sequence, Union

import torch


def compute_accuracy(
    output: Union[torch.Tensor, Sequence[torch.Tensor]],
    target: torch.Tensor,
    topk: Sequence[int] = (1,),
) -> List[torch.Tensor]:
    """Top-k accuracies in percent, one 1-element tensor per k.

    output: [B, C] scores (a tuple/list of tensors uses the first); target: [B] labels.
    """
    maxk = max(topk)
    batch_size = target.size(0)
    if isinstance(output, (tuple, list)):
        output = output[0]
    _, pred = output.topk(maxk, 1, True, True)
    pred = pred.t()  # [maxk, B]
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    res = []
    for k in topk:
        correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
        res.append(correct_k.mul_(100.0 / batch_size))
    return res
