"""Checkpoints: round trip, atomic writes, resume after an interruption, file choice."""
import argparse
import os

import pytest
import torch
import torch.nn as nn

from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.utils import (
    find_checkpoint_file,
    load_checkpoint,
    load_pretrained_weights,
    resume_from_checkpoint,
    save_checkpoint,
    set_random_seed,
)

from tests.toy_trainer import ToyTrainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _state(epoch, value=0.0):
    return {
        "state_dict": {"module.w": torch.full((3,), value)},
        "epoch": epoch,
        "optimizer": None,
        "scheduler": None,
        "val_result": None,
    }


# ---------------------------------------------------------------- files


def test_round_trip_strips_module_prefix_and_writes_pointer(tmp_path, capsys):
    path = save_checkpoint(_state(3, 1.5), str(tmp_path))
    assert path == str(tmp_path / "model.pth.tar-3")
    assert capsys.readouterr().out == f"Checkpoint saved to {path}\n"
    assert (tmp_path / "checkpoint").read_text() == "model.pth.tar-3\n"
    ckpt = load_checkpoint(path)
    assert list(ckpt["state_dict"]) == ["w"]
    assert torch.equal(ckpt["state_dict"]["w"], torch.full((3,), 1.5))
    assert ckpt["epoch"] == 3 and ckpt["val_result"] is None


def test_named_save_and_best_copy(tmp_path):
    save_checkpoint(_state(1), str(tmp_path), model_name="model-best.pth.tar")
    assert (tmp_path / "checkpoint").read_text() == "model-best.pth.tar\n"
    save_checkpoint(_state(2), str(tmp_path), is_best=True)
    assert load_checkpoint(str(tmp_path / "model-best.pth.tar"))["epoch"] == 2


def _crashing_save(monkeypatch):
    real_save = torch.save

    def partial_then_crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", partial_then_crash)
    return real_save


@pytest.mark.parametrize("model_name", ["", "model-best.pth.tar"])
def test_crash_during_write_leaves_previous_files_intact(tmp_path, monkeypatch, model_name):
    first = save_checkpoint(_state(1, 7.0), str(tmp_path), model_name=model_name)
    before = sorted(os.listdir(tmp_path))
    _crashing_save(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_state(2, 9.0), str(tmp_path), model_name=model_name)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == before  # no temp file, no partial file
    assert (tmp_path / "checkpoint").read_text() == os.path.basename(first) + "\n"
    assert torch.equal(load_checkpoint(first)["state_dict"]["w"], torch.full((3,), 7.0))


def test_missing_file_error_names_path(tmp_path):
    missing = tmp_path / "model.pth.tar-9"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_checkpoint(str(missing))


def test_truncated_file_error_names_path_and_fix(tmp_path):
    path = save_checkpoint(_state(1), str(tmp_path))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(RuntimeError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert path in msg
    assert "corrupt or incomplete" in msg
    assert "Delete it" in msg and "previous epoch" in msg


def test_objects_that_need_full_unpickling_still_load(tmp_path):
    path = tmp_path / "lineage.pth"
    torch.save({"scheduler": argparse.Namespace(step=3)}, path)
    assert load_checkpoint(str(path))["scheduler"].step == 3


def test_find_checkpoint_file(tmp_path):
    folder = tmp_path / "prompt_learner"
    folder.mkdir()
    for n in (2, 9, 10):
        (folder / f"model.pth.tar-{n}").write_bytes(b"x")
    (folder / "checkpoint").write_text("model.pth.tar-10\n")
    assert find_checkpoint_file(str(folder)) == str(folder / "model.pth.tar-10")
    assert find_checkpoint_file(str(folder), epoch=2) == str(folder / "model.pth.tar-2")
    (folder / "model-best.pth.tar").write_bytes(b"x")
    assert find_checkpoint_file(str(folder)) == str(folder / "model-best.pth.tar")
    assert find_checkpoint_file(str(folder), epoch=9) == str(folder / "model.pth.tar-9")
    with pytest.raises(FileNotFoundError) as info:
        find_checkpoint_file(str(folder), epoch=5)
    assert "model.pth.tar-5" in str(info.value) and "model.pth.tar-10" in str(info.value)


def test_find_checkpoint_file_missing_folder_or_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        find_checkpoint_file(str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(info.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="notes.txt"):
        find_checkpoint_file(str(tmp_path / "empty"))


def test_load_pretrained_weights_keeps_matching_tensors(tmp_path, capsys):
    src = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    torch.save({"state_dict": src.state_dict()}, tmp_path / "w.pth")
    dst = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 5))
    load_pretrained_weights(dst, str(tmp_path / "w.pth"))
    assert torch.equal(dst[0].weight, src[0].weight)
    out = capsys.readouterr().out
    assert "Successfully loaded pretrained weights" in out
    assert "['1.weight', '1.bias']" in out


# ---------------------------------------------------------------- resume


class Interrupted(Exception):
    pass


class KilledAfterEpoch2(ToyTrainer):
    def after_epoch(self):
        super().after_epoch()
        if self.epoch + 1 == 2:
            raise Interrupted


def _cfg(out_dir, **kw):
    cfg = get_cfg_default()
    cfg.USE_CUDA = False
    cfg.VERBOSE = False
    cfg.OUTPUT_DIR = str(out_dir)
    cfg.OPTIM.NAME = "adamw"
    cfg.OPTIM.LR = 0.01
    cfg.OPTIM.MAX_EPOCH = 4
    cfg.OPTIM.LR_SCHEDULER = "cosine"
    cfg.OPTIM.WARMUP_EPOCH = 1
    cfg.OPTIM.WARMUP_TYPE = "constant"
    cfg.TRAIN.PRINT_FREQ = 6
    for k, v in kw.items():
        node = cfg
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    return cfg


def _train(trainer_cls, cfg):
    set_random_seed(1)
    trainer = trainer_cls(cfg)
    trainer.train()
    return trainer


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, capsys):
    full = _train(ToyTrainer, _cfg(tmp_path / "full"))

    out = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        _train(KilledAfterEpoch2, _cfg(out))
    # Only the newest rolling file survives the interruption.
    assert sorted(os.listdir(out / "model")) == ["checkpoint", "model.pth.tar-2"]
    capsys.readouterr()

    resumed = _train(ToyTrainer, _cfg(out))
    log = capsys.readouterr().out
    assert f"Found checkpoint at {out} (will resume training)" in log
    assert "Previous epoch: 2" in log
    epochs = [line.split("]")[0] for line in log.splitlines() if line.startswith("epoch [")]
    assert epochs[0] == "epoch [3/4"
    assert "epoch [1/4" not in epochs

    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert resumed.optim.param_groups[0]["lr"] == full.optim.param_groups[0]["lr"]
    # The finished run's folder looks exactly like Dassl's.
    assert sorted(os.listdir(out / "model")) == ["checkpoint", "model.pth.tar-4"]
    assert (out / "model" / "checkpoint").read_text() == "model.pth.tar-4\n"
    assert sorted(os.listdir(tmp_path / "full" / "model")) == ["checkpoint", "model.pth.tar-4"]


def test_checkpoint_freq_files_are_kept(tmp_path, capsys):
    _train(ToyTrainer, _cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 5, "TRAIN.CHECKPOINT_FREQ": 2}))
    assert sorted(os.listdir(tmp_path / "model")) == [
        "checkpoint", "model.pth.tar-2", "model.pth.tar-4", "model.pth.tar-5"]
    saves = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Checkpoint saved")]
    # Rolling saves are silent; the log shows Dassl's saves only.
    assert [s.rsplit("-", 1)[1] for s in saves] == ["2", "4", "5"]


def test_checkpoint_loads_with_weights_only(tmp_path):
    _train(ToyTrainer, _cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 2}))
    ckpt = torch.load(tmp_path / "model" / "model.pth.tar-2", weights_only=True)
    assert set(ckpt) >= {"state_dict", "epoch", "optimizer", "scheduler", "val_result", "rng_state"}
    assert ckpt["epoch"] == 2


def test_resume_when_all_epochs_done_only_tests(tmp_path, capsys):
    _train(ToyTrainer, _cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 2}))
    capsys.readouterr()
    _train(ToyTrainer, _cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 2}))
    log = capsys.readouterr().out
    assert "Previous epoch: 2" in log
    assert "epoch [" not in log
    assert "=> result" in log


def test_best_val_saves_best_and_load_model_picks_it(tmp_path, capsys):
    trainer = _train(ToyTrainer, _cfg(tmp_path, **{"TEST.FINAL_MODEL": "best_val"}))
    files = sorted(os.listdir(tmp_path / "model"))
    assert files == ["checkpoint", "model-best.pth.tar", "model.pth.tar-4"]
    log = capsys.readouterr().out
    assert "Deploy the model with the best val performance" in log
    assert f"Load {tmp_path / 'model' / 'model-best.pth.tar'} to model (epoch=" in log
    assert "val_result=" in log
    assert trainer.best_result > -float("inf")


def test_load_model_without_val_result(tmp_path, capsys):
    trainer = _train(ToyTrainer, _cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 1}))
    capsys.readouterr()
    trainer.load_model(str(tmp_path))
    path = tmp_path / "model" / "model.pth.tar-1"
    assert capsys.readouterr().out == f"Load {path} to model (epoch=1)\n"
    trainer.load_model("")
    assert "load_model() is skipped" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="model.pth.tar-7"):
        trainer.load_model(str(tmp_path), epoch=7)


def test_resume_from_checkpoint_direct(tmp_path, capsys):
    trainer = _train(ToyTrainer, _cfg(tmp_path, **{"OPTIM.MAX_EPOCH": 1}))
    capsys.readouterr()
    model = nn.Linear(4, 2)
    epoch = resume_from_checkpoint(str(tmp_path / "model"), model)
    assert epoch == 1
    assert torch.equal(model.weight, trainer.model.weight)
    assert capsys.readouterr().out == (
        f'Loading checkpoint from "{tmp_path / "model" / "model.pth.tar-1"}"\n'
        "Loaded model weights\nPrevious epoch: 1\n"
    )
