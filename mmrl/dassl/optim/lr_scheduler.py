"""LR schedulers built from the ``OPTIM`` config node, with Dassl's warmup.

The warmup wrappers reproduce Dassl's LR at every epoch. Unlike Dassl's,
their ``state_dict`` holds the successor's *state* (not the successor
object), so checkpoints load with ``torch.load(weights_only=True)`` and a
resumed successor keeps driving the live optimizer.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LRScheduler,
    MultiStepLR,
    StepLR,
)

AVAI_SCHEDS = ["single_step", "multi_step", "cosine"]


class _BaseWarmupScheduler(LRScheduler):
    """Runs its own schedule for ``warmup_epoch`` steps, then hands every
    later step to ``successor``."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        successor: LRScheduler,
        warmup_epoch: int,
        last_epoch: int = -1,
    ) -> None:
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def warmup_lr(self) -> List[float]:
        raise NotImplementedError

    def get_lr(self) -> List[float]:
        if self.last_epoch >= self.warmup_epoch:
            # The switch-over step: the successor's LR at its own start.
            return list(self.successor.get_last_lr())
        return self.warmup_lr()

    def step(self, epoch: Any = None) -> None:
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = list(self.successor.get_last_lr())
        else:
            super().step(epoch)

    def state_dict(self) -> Dict[str, Any]:
        state = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("optimizer", "successor")
        }
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        state = dict(state_dict)
        successor_state = state.pop("successor")
        if not isinstance(successor_state, dict):
            # A lineage checkpoint pickled the successor object itself.
            successor_state = successor_state.state_dict()
            successor_state.pop("optimizer", None)
        self.__dict__.update(state)
        self.successor.load_state_dict(successor_state)


class ConstantWarmupScheduler(_BaseWarmupScheduler):
    """LR = ``cons_lr`` during warmup."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        successor: LRScheduler,
        warmup_epoch: int,
        cons_lr: float,
        last_epoch: int = -1,
    ) -> None:
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self) -> List[float]:
        return [self.cons_lr for _ in self.base_lrs]


class LinearWarmupScheduler(_BaseWarmupScheduler):
    """LR = ``min_lr`` at step 0, then base_lr * step / warmup_epoch."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        successor: LRScheduler,
        warmup_epoch: int,
        min_lr: float,
        last_epoch: int = -1,
    ) -> None:
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def warmup_lr(self) -> List[float]:
        if self.last_epoch == 0:
            return [self.min_lr for _ in self.base_lrs]
        return [lr * self.last_epoch / self.warmup_epoch for lr in self.base_lrs]


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, optim_cfg: Any
) -> LRScheduler:
    """The scheduler named by ``OPTIM.LR_SCHEDULER``, wrapped in a warmup when
    ``OPTIM.WARMUP_EPOCH > 0``. Step it once per epoch."""
    lr_scheduler = optim_cfg.LR_SCHEDULER
    stepsize = optim_cfg.STEPSIZE
    gamma = optim_cfg.GAMMA
    max_epoch = optim_cfg.MAX_EPOCH

    if lr_scheduler not in AVAI_SCHEDS:
        raise ValueError(
            f"OPTIM.LR_SCHEDULER must be one of {AVAI_SCHEDS}, but got "
            f"{lr_scheduler!r}"
        )

    if lr_scheduler == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise TypeError(
                "For single_step, OPTIM.STEPSIZE must be an integer (or a list "
                f"ending in one), but got {type(stepsize).__name__} {stepsize!r}"
            )
        if stepsize <= 0:
            stepsize = max_epoch
        scheduler: LRScheduler = StepLR(optimizer, step_size=stepsize, gamma=gamma)
    elif lr_scheduler == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError(
                "For multi_step, OPTIM.STEPSIZE must be a list, but got "
                f"{type(stepsize).__name__} {stepsize!r}"
            )
        scheduler = MultiStepLR(optimizer, milestones=list(stepsize), gamma=gamma)
    else:
        scheduler = CosineAnnealingLR(optimizer, T_max=float(max_epoch))

    if optim_cfg.WARMUP_EPOCH > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = optim_cfg.WARMUP_EPOCH
        if optim_cfg.WARMUP_TYPE == "constant":
            scheduler = ConstantWarmupScheduler(
                optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_CONS_LR
            )
        elif optim_cfg.WARMUP_TYPE == "linear":
            scheduler = LinearWarmupScheduler(
                optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_MIN_LR
            )
        else:
            raise ValueError(
                "OPTIM.WARMUP_TYPE must be 'constant' or 'linear', but got "
                f"{optim_cfg.WARMUP_TYPE!r}"
            )
    return scheduler
