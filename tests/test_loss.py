import math

import pytest
import torch

from mmrl.model.loss import mmrl_loss


def test_loss_equals_hand_computed_value():
    # CE(logits_c=[0, 0], y=0) = ln 2; CE(logits_r=[ln 3, 0], y=0) = -ln(3/4) = ln(4/3)
    logits_c = torch.tensor([[0.0, 0.0]])
    logits_r = torch.tensor([[math.log(3.0), 0.0]])
    labels = torch.tensor([0])
    f_c = torch.tensor([[1.0, 0.0]])
    f_c_zs = torch.tensor([[2.0, 2.0]])  # cos = 1/sqrt(2), scale does not matter
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w_zs = torch.tensor([[3.0, 0.0], [0.0, -1.0]])  # cos = 1 and -1, mean 0
    loss = mmrl_loss(logits_c, logits_r, f_c, f_c_zs, w, w_zs, labels, alpha=0.5, reg_weight=2.0)
    # 0.5 ln 2 + 0.5 ln(4/3) + 2 (1 - 1/sqrt 2) + 2 (1 - 0) = 3.0762015...
    expected = 0.5 * math.log(2) + 0.5 * math.log(4 / 3) + 2 * (1 - 1 / math.sqrt(2)) + 2 * 1.0
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert loss.item() == pytest.approx(3.0762015, abs=1e-6)


def test_alpha_weights_the_two_cross_entropies():
    logits_c = torch.tensor([[0.0, 0.0]])
    logits_r = torch.tensor([[math.log(3.0), 0.0]])
    labels = torch.tensor([0])
    same = torch.tensor([[1.0, 1.0]])
    only_c = mmrl_loss(logits_c, logits_r, same, same, same, same, labels, alpha=1.0, reg_weight=5.0)
    only_r = mmrl_loss(logits_c, logits_r, same, same, same, same, labels, alpha=0.0, reg_weight=5.0)
    mixed = mmrl_loss(logits_c, logits_r, same, same, same, same, labels, alpha=0.7, reg_weight=0.0)
    assert only_c.item() == pytest.approx(math.log(2), abs=1e-6)
    assert only_r.item() == pytest.approx(math.log(4 / 3), abs=1e-6)
    assert mixed.item() == pytest.approx(0.7 * math.log(2) + 0.3 * math.log(4 / 3), abs=1e-6)


def test_loss_is_mean_over_batch_and_classes():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0])
    f_c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    f_zs = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # cos 1 and 0 -> mean 0.5
    w = torch.tensor([[1.0, 0.0]])
    loss = mmrl_loss(logits, logits, f_c, f_zs, w, w, labels, alpha=0.7, reg_weight=1.0)
    ce = 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2)))
    assert loss.item() == pytest.approx(ce + 0.5, abs=1e-6)
