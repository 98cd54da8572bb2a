"""build_optimizer: constructors and hyper-parameters per OPTIM.NAME."""
import pytest
import torch
import torch.nn as nn

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.optim import build_optimizer


def _cfg(name, **kw):
    cfg = get_cfg_default().OPTIM
    cfg.NAME = name
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)


def test_adamw_uses_config_weight_decay_and_betas():
    opt = build_optimizer(Net(), _cfg("adamw", LR=1e-3, ADAM_BETA1=0.8, ADAM_BETA2=0.99))
    assert type(opt) is torch.optim.AdamW
    g = opt.param_groups[0]
    assert g["lr"] == 1e-3
    assert g["weight_decay"] == 5e-4  # Dassl's default, not torch's 1e-2
    assert g["betas"] == (0.8, 0.99)
    assert g["eps"] == 1e-8


def test_adam_defaults():
    opt = build_optimizer(Net(), _cfg("adam"))
    assert type(opt) is torch.optim.Adam
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["betas"], g["amsgrad"]) == (
        0.0003, 5e-4, (0.9, 0.999), False)


def test_amsgrad():
    opt = build_optimizer(Net(), _cfg("amsgrad"))
    assert type(opt) is torch.optim.Adam
    assert opt.param_groups[0]["amsgrad"] is True


def test_sgd_defaults():
    opt = build_optimizer(Net(), _cfg("sgd", LR=0.002))
    assert type(opt) is torch.optim.SGD
    g = opt.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"], g["dampening"], g["nesterov"]) == (
        0.002, 0.9, 5e-4, 0, False)


def test_rmsprop_defaults():
    opt = build_optimizer(Net(), _cfg("rmsprop"))
    assert type(opt) is torch.optim.RMSprop
    g = opt.param_groups[0]
    assert (g["momentum"], g["weight_decay"], g["alpha"]) == (0.9, 5e-4, 0.99)


def test_radam():
    opt = build_optimizer(Net(), _cfg("radam"))
    assert type(opt) is torch.optim.RAdam
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_all_parameters_including_frozen_ones():
    net = Net()
    net.backbone.requires_grad_(False)
    opt = build_optimizer(net, _cfg("adamw"))
    assert len(opt.param_groups[0]["params"]) == 4


def test_parameter_list_is_accepted():
    net = Net()
    opt = build_optimizer(net.head.parameters(), _cfg("sgd"))
    assert len(opt.param_groups[0]["params"]) == 2


def test_staged_lr():
    net = Net()
    opt = build_optimizer(net, _cfg("sgd", LR=0.01, STAGED_LR=True, NEW_LAYERS=("head",)))
    base, new = opt.param_groups
    assert base["lr"] == pytest.approx(0.001)
    assert new["lr"] == 0.01
    assert base["params"][0] is net.backbone.weight
    assert new["params"][0] is net.head.weight


def test_param_groups_override_staged_lr_with_warning():
    net = Net()
    groups = [{"params": net.head.parameters(), "lr": 0.5}]
    with pytest.warns(UserWarning, match="STAGED_LR"):
        opt = build_optimizer(net, _cfg("sgd", STAGED_LR=True), param_groups=groups)
    assert opt.param_groups[0]["lr"] == 0.5


def test_unknown_name():
    with pytest.raises(ValueError, match="'lamb'"):
        build_optimizer(Net(), _cfg("lamb"))
