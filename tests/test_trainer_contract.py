"""The contract every registered trainer keeps, run on the demo with its ``demo.yaml``: one epoch
of training, the checkpoint it saves, an eval-only reload that scores exactly as the final test,
and bad configs refused with the key named. A new trainer is covered by registering it (and
shipping configs/trainers/<NAME>/demo.yaml), not by editing this file."""
import os

import pytest

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from mmrl.config import build_parser, setup_cfg
from mmrl.dassl.engine import TRAINER_REGISTRY, build_trainer
from mmrl.dassl.utils import set_random_seed

REPOSITORY_TRAINERS = sorted(
    name for name in TRAINER_REGISTRY.registered_names()
    if TRAINER_REGISTRY.get(name).__module__.startswith("trainers.")
)


def argv(trainer, root, out, *opts):
    return ["--root", str(root), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/demo.yaml",
            "--config-file", f"configs/trainers/{trainer}/demo.yaml", "--output-dir", str(out),
            "DATASET.NUM_SHOTS", "2", "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", "1", *opts]


def make(trainer, root, out, *opts):
    cfg = setup_cfg(build_parser().parse_args(argv(trainer, root, out, *opts)))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_the_repository_trainers_are_covered():
    assert {"MMRL", "MMRLpp", "ZeroshotCLIP"} <= set(REPOSITORY_TRAINERS)


@pytest.mark.parametrize("name", REPOSITORY_TRAINERS)
def test_train_save_and_reload(name, root, tmp_path):
    out = tmp_path / "train"
    trainer = make(name, root, out)
    trainer.train()
    accuracy = trainer.test()
    # What a training run saves: one folder per registered model, with Dassl's pointer file and
    # the last epoch, beside the config a training run records and the evaluation record test()
    # writes (a trainer that learns nothing registers no model, trains not, and saves only that
    # evaluation record).
    for model_name in trainer.get_model_names():
        assert sorted(os.listdir(out / model_name)) == ["checkpoint", "model.pth.tar-1"]
    trained = ["config.yaml"] if trainer.get_model_names() else []
    saved = sorted(f for f in os.listdir(out) if f != "tensorboard")
    assert saved == sorted(trainer.get_model_names() + trained + ["results.json"])

    evaluator = make(name, root, tmp_path / "eval")
    evaluator.load_model(str(out))
    assert evaluator.test() == accuracy


@pytest.mark.parametrize("name", REPOSITORY_TRAINERS)
def test_bad_config_is_refused_with_the_key_named(name, root, tmp_path):
    with pytest.raises(ValueError, match=f"TRAINER.{name}.NO_SUCH_KEY"):
        setup_cfg(build_parser().parse_args(argv(name, root, tmp_path, f"TRAINER.{name}.NO_SUCH_KEY", "1")))
    with pytest.raises(ValueError, match="TASK must be one of B2N, FS, CD"):
        setup_cfg(build_parser().parse_args(argv(name, root, tmp_path, "TASK", "XD")))
    with pytest.raises(ValueError, match="INPUT.SIZE"):
        make(name, root, tmp_path, "INPUT.SIZE", "(64, 64)")
