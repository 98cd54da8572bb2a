"""Trainer lifecycle: hook order, per-iteration log line, end-of-training output, precision."""
import re
import types

import pytest
import torch
import torch.nn as nn

import mmrl.dassl.engine.trainer as trainer_module
from mmrl.dassl.config import CfgNode, get_cfg_default
from mmrl.dassl.engine import TRAINER_REGISTRY, TrainerBase, build_trainer
from mmrl.dassl.utils import Registry, set_random_seed

from tests.toy_trainer import ToyTrainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class LoopTrainer(ToyTrainer):
    """Records the hooks it runs."""

    with_val = False

    def build_data_loader(self):
        super().build_data_loader()
        self.calls = []

    def before_train(self):
        self.calls.append("before_train")
        super().before_train()

    def before_epoch(self):
        self.calls.append(f"before_epoch {self.epoch}")

    def run_epoch(self):
        self.calls.append(f"run_epoch {self.epoch}")
        super().run_epoch()

    def after_epoch(self):
        self.calls.append(f"after_epoch {self.epoch}")
        super().after_epoch()

    def after_train(self):
        self.calls.append("after_train")
        super().after_train()


TRAINER_REGISTRY.register(LoopTrainer, force=True)


def _cfg(out_dir, max_epoch=3, print_freq=2, name="LoopTrainer"):
    cfg = get_cfg_default()
    cfg.USE_CUDA = False
    cfg.OUTPUT_DIR = str(out_dir)
    cfg.TRAINER.NAME = name
    cfg.OPTIM.NAME = "adamw"
    cfg.OPTIM.LR = 0.01
    cfg.OPTIM.MAX_EPOCH = max_epoch
    cfg.OPTIM.LR_SCHEDULER = "cosine"
    cfg.OPTIM.WARMUP_EPOCH = 1
    cfg.OPTIM.WARMUP_TYPE = "constant"
    cfg.TRAIN.PRINT_FREQ = print_freq
    return cfg


@pytest.fixture
def fake_clock(monkeypatch):
    """Each time.time() call inside the engine advances one second."""
    state = {"now": 1000.0}

    def tick():
        state["now"] += 1.0
        return state["now"]

    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(time=tick))


LINE = re.compile(
    r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] "
    r"time (\d+\.\d{3}) \((\d+\.\d{3})\) data (\d+\.\d{3}) \((\d+\.\d{3})\) "
    r"loss \d+\.\d{4} \(\d+\.\d{4}\) acc \d+\.\d{4} \(\d+\.\d{4}\) "
    r"lr (\d\.\d{4}e[-+]\d\d) eta (\d+:\d\d:\d\d)$"
)


def _train(cfg):
    set_random_seed(0)
    trainer = build_trainer(cfg)
    trainer.train()
    return trainer


def _log_lines(out):
    return [LINE.match(l) for l in out.splitlines() if l.startswith("epoch [")]


def test_hooks_run_in_order(tmp_path, capsys):
    trainer = _train(_cfg(tmp_path, max_epoch=2))
    assert trainer.calls == [
        "before_train",
        "before_epoch 0", "run_epoch 0", "after_epoch 0",
        "before_epoch 1", "run_epoch 1", "after_epoch 1",
        "after_train",
    ]


def test_log_line_format_eta_and_lr(tmp_path, capsys, fake_clock):
    _train(_cfg(tmp_path, max_epoch=3, print_freq=2))
    matches = _log_lines(capsys.readouterr().out)
    assert all(matches)
    # 6 batches per epoch, printed at batches 2, 4 and 6.
    assert [(m[1], m[3]) for m in matches] == [
        (e, b) for e in "123" for b in "246"]
    first = matches[0]
    assert first.group(0).startswith(
        "epoch [1/3] batch [2/6] time 2.000 (2.000) data 1.000 (1.000) loss ")
    # 16 batches remain, at 2 s each.
    assert first[10] == "0:00:32"
    assert matches[-1][10] == "0:00:00"
    # lr is read after forward_backward: the epoch's last batch already shows
    # the next epoch's rate (warmup 1e-5, then 1e-2, then the cosine).
    assert [m[9] for m in matches] == [
        "1.0000e-05", "1.0000e-05", "1.0000e-02",
        "1.0000e-02", "1.0000e-02", "7.5000e-03",
        "7.5000e-03", "7.5000e-03", "2.5000e-03",
    ]


def test_print_frequency_rule(tmp_path, capsys):
    _train(_cfg(tmp_path / "a", max_epoch=1, print_freq=4))
    # 6 batches, PRINT_FREQ 4: only batch 4; the last batch is not a multiple.
    assert [m[3] for m in _log_lines(capsys.readouterr().out)] == ["4"]
    _train(_cfg(tmp_path / "b", max_epoch=1, print_freq=10))
    # Fewer batches than PRINT_FREQ: every batch is printed.
    assert [m[3] for m in _log_lines(capsys.readouterr().out)] == list("123456")


def test_end_of_training_output(tmp_path, capsys):
    _train(_cfg(tmp_path, max_epoch=1))
    out = capsys.readouterr().out
    assert out.startswith("Loading trainer: LoopTrainer\nLoading evaluator: Classification\n")
    tail = out[out.index("Finish training"):]
    assert re.fullmatch(
        r"Finish training\n"
        r"Deploy the last-epoch model\n"
        r"Evaluate on the \*test\* set\n"
        r"=> result\n"
        r"\* total: 24\n"
        r"\* correct: \d+\n"
        r"\* accuracy: \d+\.\d%\n"
        r"\* error: \d+\.\d%\n"
        r"\* macro_f1: \d+\.\d%\n"
        r"Elapsed: 0:00:0\d\n",
        tail,
    )
    assert "No checkpoint found, train from scratch" in out
    assert f"Checkpoint saved to {tmp_path / 'model' / 'model.pth.tar-1'}" in out
    assert (tmp_path / "tensorboard").is_dir()


def test_no_test_skips_final_evaluation(tmp_path, capsys):
    cfg = _cfg(tmp_path, max_epoch=1)
    cfg.TEST.NO_TEST = True
    _train(cfg)
    out = capsys.readouterr().out
    assert "Finish training\nElapsed: " in out
    assert "=> result" not in out


def test_val_split_without_val_loader_falls_back_to_test(tmp_path, capsys):
    trainer = build_trainer(_cfg(tmp_path, max_epoch=1))
    capsys.readouterr()
    acc = trainer.test(split="val")
    out = capsys.readouterr().out
    assert out.startswith("Evaluate on the *test* set\n=> result\n")
    assert 0.0 <= acc <= 100.0


def test_precision_policy_on_cpu(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    trainer = build_trainer(cfg)
    assert trainer.precision == "fp32" and trainer.scaler is None
    assert "Precision" not in capsys.readouterr().out

    cfg = _cfg(tmp_path)
    cfg.TRAINER.LoopTrainer = CfgNode({"PREC": "amp"})
    trainer = LoopTrainer(cfg)
    assert trainer.precision == "fp32"
    assert trainer.scaler is None
    assert capsys.readouterr().out.splitlines()[0] == (
        "Precision amp is not supported on CPU; using fp32 (TRAINER.LoopTrainer.PREC_ON_CPU True runs amp on CPU)")
    with trainer.autocast():
        assert not torch.is_autocast_enabled()

    cfg = _cfg(tmp_path)
    cfg.TRAINER.LoopTrainer = CfgNode({"PREC": "fp8"})
    with pytest.raises(ValueError, match='TRAINER.LoopTrainer.PREC must be "fp16", "fp32", "amp" or "bf16", got \'fp8\''):
        LoopTrainer(cfg)
    # The node is the trainer's own name only (no upper-cased fallback).
    cfg = _cfg(tmp_path)
    cfg.TRAINER.LOOPTRAINER = CfgNode({"PREC": "bf16"})
    assert LoopTrainer(cfg).precision == "fp32"


@pytest.mark.parametrize("prec, autocast_dtype, scaled", [
    ("fp16", None, False), ("amp", torch.float16, True), ("bf16", torch.bfloat16, False)])
def test_precision_on_cpu_when_asked(tmp_path, capsys, prec, autocast_dtype, scaled):
    cfg = _cfg(tmp_path)
    # bf16 needs no opt-in: it is never a config's default.
    cfg.TRAINER.LoopTrainer = CfgNode({"PREC": prec, "PREC_ON_CPU": prec != "bf16"})
    trainer = LoopTrainer(cfg)
    assert trainer.precision == prec
    assert (trainer.scaler is not None) == scaled
    if scaled:
        assert trainer.scaler.is_enabled() and trainer.scaler._device == "cpu"
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"Precision {prec} on CPU")
    with trainer.autocast():
        assert torch.is_autocast_enabled("cpu") == (autocast_dtype is not None)
        if autocast_dtype is not None:
            assert torch.get_autocast_dtype("cpu") == autocast_dtype


def test_anomalous_loss_is_reported(tmp_path, capsys):
    trainer = build_trainer(_cfg(tmp_path))
    with pytest.raises(FloatingPointError, match="Loss is infinite or NaN!"):
        trainer.model_backward_and_update(torch.tensor(float("nan"), requires_grad=True))


def test_model_bookkeeping_errors(tmp_path, capsys):
    trainer = build_trainer(_cfg(tmp_path))
    with pytest.raises(KeyError):
        trainer.set_model_mode("bogus")
    with pytest.raises(AssertionError):
        trainer.register_model("model", nn.Linear(1, 1))
    assert trainer.get_model_names() == ["model"]
    assert trainer.get_model_names("model") == ["model"]
    swapped = nn.Linear(4, 2)
    trainer.replace_model("model", swapped, None, None)
    assert trainer._models["model"] is swapped and trainer._optims["model"] is None
    assert trainer.get_model_names() == ["model"]
    with pytest.raises(KeyError, match="no model registered as 'other'"):
        trainer.replace_model("other", swapped)

    class Early(TrainerBase):
        def __init__(self):
            self.register_model("m", nn.Linear(1, 1))

    with pytest.raises(AttributeError, match="before super"):
        Early()


def test_registry_rules(tmp_path):
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    assert reg.get("Alpha") is Alpha
    with pytest.raises(KeyError, match="Alpha"):
        reg.register(Alpha)
    with pytest.raises(ValueError, match="do you mean 'Alpha'"):
        reg.get("Alpah")
    cfg = _cfg(tmp_path, name="LoopTrainr")
    with pytest.raises(ValueError, match="do you mean 'LoopTrainer'"):
        build_trainer(cfg)
