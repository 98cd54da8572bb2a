"""Optimizers built from the ``OPTIM`` config node."""
from __future__ import annotations

import warnings
from typing import Any, Iterable, List, Optional, Union

import torch
import torch.nn as nn

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]


def build_optimizer(
    model_or_params: Union[nn.Module, Iterable[Any]],
    optim_cfg: Any,
    param_groups: Optional[List[dict]] = None,
) -> torch.optim.Optimizer:
    """Build the optimizer named by ``optim_cfg.NAME``.

    With ``param_groups`` given they are used as they are. Otherwise, with
    STAGED_LR the direct children named in NEW_LAYERS train at LR and all
    others at LR * BASE_LR_MULT; without it every parameter of the module
    (frozen ones included, as in Dassl) is handed to the optimizer.
    """
    optim = optim_cfg.NAME
    lr = optim_cfg.LR
    weight_decay = optim_cfg.WEIGHT_DECAY
    momentum = optim_cfg.MOMENTUM
    sgd_dampening = optim_cfg.SGD_DAMPNING
    sgd_nesterov = optim_cfg.SGD_NESTEROV
    rmsprop_alpha = optim_cfg.RMSPROP_ALPHA
    adam_beta1 = optim_cfg.ADAM_BETA1
    adam_beta2 = optim_cfg.ADAM_BETA2
    staged_lr = optim_cfg.STAGED_LR
    new_layers = optim_cfg.NEW_LAYERS
    base_lr_mult = optim_cfg.BASE_LR_MULT

    if optim not in AVAI_OPTIMS:
        raise ValueError(
            f"OPTIM.NAME must be one of {AVAI_OPTIMS}, but got {optim!r}"
        )

    if param_groups is not None and staged_lr:
        warnings.warn(
            "OPTIM.STAGED_LR is ignored because param_groups were given; "
            "build the staged groups yourself if you need them"
        )

    if param_groups is None:
        if staged_lr:
            if not isinstance(model_or_params, nn.Module):
                raise TypeError(
                    "When OPTIM.STAGED_LR is True, the model given to "
                    "build_optimizer() must be an nn.Module"
                )
            model = model_or_params
            if isinstance(model, nn.DataParallel):
                model = model.module
            if isinstance(new_layers, str):
                new_layers = [new_layers]
            if not new_layers:
                warnings.warn("OPTIM.NEW_LAYERS is empty, so STAGED_LR has no effect")
            base_params, new_params = [], []
            for name, module in model.named_children():
                if name in new_layers:
                    new_params += list(module.parameters())
                else:
                    base_params += list(module.parameters())
            param_groups = [
                {"params": base_params, "lr": lr * base_lr_mult},
                {"params": new_params},
            ]
        elif isinstance(model_or_params, nn.Module):
            param_groups = model_or_params.parameters()
        else:
            param_groups = model_or_params

    betas = (adam_beta1, adam_beta2)
    if optim == "adam":
        return torch.optim.Adam(
            param_groups, lr=lr, weight_decay=weight_decay, betas=betas
        )
    if optim == "amsgrad":
        return torch.optim.Adam(
            param_groups, lr=lr, weight_decay=weight_decay, betas=betas, amsgrad=True
        )
    if optim == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            dampening=sgd_dampening,
            nesterov=sgd_nesterov,
        )
    if optim == "rmsprop":
        return torch.optim.RMSprop(
            param_groups,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            alpha=rmsprop_alpha,
        )
    if optim == "radam":
        return torch.optim.RAdam(
            param_groups, lr=lr, weight_decay=weight_decay, betas=betas
        )
    # adamw: Dassl passes WEIGHT_DECAY (5e-4), not torch's own 1e-2 default.
    return torch.optim.AdamW(
        param_groups, lr=lr, weight_decay=weight_decay, betas=betas
    )
