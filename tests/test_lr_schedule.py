"""LR at every epoch for Dassl's schedulers and warmup wrappers."""
import io
import math

import pytest
import torch

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.optim import (
    ConstantWarmupScheduler,
    LinearWarmupScheduler,
    build_lr_scheduler,
    build_optimizer,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _optim_cfg(**kw):
    cfg = get_cfg_default().OPTIM
    cfg.NAME = "adamw"
    cfg.LR = 1e-3
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _build(optim_cfg):
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, optim_cfg)
    return optimizer, build_lr_scheduler(optimizer, optim_cfg)


def _run(optimizer, scheduler, n_epochs):
    """LR used in each epoch, then the LR after the last step (one step per epoch)."""
    lrs = []
    for _ in range(n_epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs, optimizer.param_groups[0]["lr"]


def _cosine_cfg(max_epoch):
    return _optim_cfg(
        MAX_EPOCH=max_epoch, LR_SCHEDULER="cosine", WARMUP_EPOCH=1,
        WARMUP_TYPE="constant", WARMUP_CONS_LR=1e-5,
    )


def test_constant_warmup_cosine_five_epochs():
    lrs, after = _run(*_build(_cosine_cfg(5)), 5)
    assert [round(x, 9) for x in lrs] == pytest.approx(
        [1e-5, 1e-3, 9.0451e-4, 6.5451e-4, 3.4549e-4], abs=5e-9
    )
    assert after == pytest.approx(9.5492e-05, abs=5e-10)
    assert isinstance(_build(_cosine_cfg(5))[1], ConstantWarmupScheduler)


def test_constant_warmup_cosine_ten_epochs():
    lrs, _ = _run(*_build(_cosine_cfg(10)), 10)
    expected = [1e-5, 1e-3, 9.7553e-4, 9.0451e-4, 7.9389e-4, 6.5451e-4,
                5.0000e-4, 3.4549e-4, 2.0611e-4, 9.5492e-5]
    assert lrs == pytest.approx(expected, abs=5e-9)
    closed = [1e-5] + [5e-4 * (1 + math.cos(math.pi * (e - 1) / 10)) for e in range(1, 10)]
    assert lrs == pytest.approx(closed, rel=1e-9)


def test_linear_warmup():
    cfg = _optim_cfg(MAX_EPOCH=6, LR_SCHEDULER="cosine", WARMUP_EPOCH=3,
                     WARMUP_TYPE="linear", WARMUP_MIN_LR=1e-5)
    optimizer, scheduler = _build(cfg)
    assert isinstance(scheduler, LinearWarmupScheduler)
    lrs, _ = _run(optimizer, scheduler, 6)
    expected = [1e-5, 1e-3 / 3, 2e-3 / 3] + [
        5e-4 * (1 + math.cos(math.pi * k / 6)) for k in range(3)
    ]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_no_warmup_single_epoch_uses_lr():
    lrs, _ = _run(*_build(_optim_cfg(MAX_EPOCH=1, LR_SCHEDULER="cosine", WARMUP_EPOCH=0)), 1)
    assert lrs == [1e-3]


def test_single_step_defaults_to_max_epoch():
    lrs, after = _run(*_build(_optim_cfg(MAX_EPOCH=3, LR_SCHEDULER="single_step")), 3)
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3])
    assert after == pytest.approx(1e-4)


def test_single_step_uses_last_stepsize_entry():
    cfg = _optim_cfg(MAX_EPOCH=5, LR_SCHEDULER="single_step", STEPSIZE=(9, 2), GAMMA=0.5)
    lrs, _ = _run(*_build(cfg), 5)
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


def test_multi_step():
    cfg = _optim_cfg(MAX_EPOCH=5, LR_SCHEDULER="multi_step", STEPSIZE=(1, 3), GAMMA=0.1)
    lrs, _ = _run(*_build(cfg), 5)
    assert lrs == pytest.approx([1e-3, 1e-4, 1e-4, 1e-5, 1e-5])


def test_bad_names_are_rejected():
    with pytest.raises(ValueError, match="'poly'"):
        _build(_optim_cfg(LR_SCHEDULER="poly"))
    with pytest.raises(ValueError, match="'exp'"):
        _build(_optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="exp"))
    with pytest.raises(TypeError, match="STEPSIZE"):
        _build(_optim_cfg(LR_SCHEDULER="multi_step", STEPSIZE=3))


@pytest.mark.parametrize("split_at", [0, 1, 3])
def test_state_dict_round_trip_resumes_same_lrs(split_at):
    cfg = _cosine_cfg(6)
    ref_lrs, ref_after = _run(*_build(cfg), 6)

    optimizer, scheduler = _build(cfg)
    _run(optimizer, scheduler, split_at)
    buf = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)

    optimizer2, scheduler2 = _build(cfg)
    optimizer2.load_state_dict(state["optimizer"])
    scheduler2.load_state_dict(state["scheduler"])
    lrs, after = _run(optimizer2, scheduler2, 6 - split_at)
    assert lrs == pytest.approx(ref_lrs[split_at:], rel=1e-12)
    assert after == pytest.approx(ref_after, rel=1e-12)


def test_warmup_state_dict_holds_no_objects():
    optimizer, scheduler = _build(_cosine_cfg(5))
    state = scheduler.state_dict()
    assert "optimizer" not in state
    assert isinstance(state["successor"], dict)
    assert "optimizer" not in state["successor"]
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    torch.load(buf, weights_only=True)
