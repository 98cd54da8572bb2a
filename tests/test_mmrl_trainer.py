"""The MMRL and MMRL++ trainers on the demo: training, decoupled inference, checkpoints, evaluation."""
import os
from dataclasses import replace

import pytest
import torch

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from mmrl.config import build_parser, setup_cfg
from mmrl.dassl.engine import build_trainer
from mmrl.dassl.utils import set_random_seed
from trainers.mmrl import scored_logits

DEMO_YAML = "configs/datasets/demo.yaml"
FOLDER = "MultiModalRepresentationLearner"


def make_trainer(root, out, trainer="MMRL", *opts, seed=1):
    argv = ["--root", str(root), "--seed", str(seed), "--trainer", trainer,
            "--dataset-config-file", DEMO_YAML,
            "--config-file", f"configs/trainers/{trainer}/demo.yaml",
            "--output-dir", str(out), "DATASET.NUM_SHOTS", "16", *opts]
    cfg = setup_cfg(build_parser().parse_args(argv))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module", params=["MMRL", "MMRLpp"])
def trained(request, root, tmp_path_factory):
    """One base-class training run per method, shared by the tests of this module."""
    out = tmp_path_factory.mktemp(f"train_{request.param}")
    trainer = make_trainer(root, out, request.param, "DATASET.SUBSAMPLE_CLASSES", "base")
    trainer.train()
    final_accuracy = trainer.test()
    return request.param, out, trainer, final_accuracy


@pytest.mark.parametrize("task, subsample, dataset, source, expected", [
    ("B2N", "base", "Caltech101", "Caltech101", "fused"),
    ("B2N", "new", "Caltech101", "Caltech101", "class"),
    ("B2N", "all", "Caltech101", "Caltech101", "class"),
    ("FS", "all", "Caltech101", "Caltech101", "fused"),
    ("CD", "all", "ImageNet", "ImageNet", "fused"),
    ("CD", "all", "EuroSAT", "ImageNet", "class"),
    ("CD", "all", "ImageNetA", "ImageNet", "class"),
])
def test_scored_logits_by_task(task, subsample, dataset, source, expected):
    assert scored_logits(task, subsample, dataset, source) == expected


def test_scored_logits_rejects_unknown_task():
    with pytest.raises(ValueError, match="TASK"):
        scored_logits("XD", "all", "ImageNet", "ImageNet")


def test_training_beats_chance_and_zero_shot(trained, root, tmp_path):
    variant, _, trainer, accuracy = trained
    n_classes = trainer.dm.num_classes
    assert n_classes == 5  # the demo's 10 classes, base half
    zero_shot = make_trainer(root, tmp_path, "ZeroshotCLIP", "DATASET.SUBSAMPLE_CLASSES", "base").test()
    assert accuracy >= 100.0 / n_classes + 30, f"{variant} base accuracy {accuracy:.1f}% is near chance"
    assert accuracy > zero_shot + 20, f"{variant} {accuracy:.1f}% vs zero-shot {zero_shot:.1f}%"


def test_checkpoint_holds_only_trainable_tensors(trained):
    variant, out, trainer, _ = trained
    files = sorted(os.listdir(out / FOLDER))
    assert files == ["checkpoint", "model.pth.tar-5"]
    path = out / FOLDER / "model.pth.tar-5"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    trainable = {n for n, p in trainer.model.learner.named_parameters() if p.requires_grad}
    assert set(checkpoint["state_dict"]) == trainable
    assert checkpoint["epoch"] == 5
    assert checkpoint["arch"]["variant"] == variant and checkpoint["arch"]["rep_dim"] == 64
    assert checkpoint["dataset"] == "SyntheticDemo"
    assert os.path.getsize(path) < 2 * 1024 ** 2  # the mini CLIP alone is over 40 MB


def test_eval_only_reproduces_the_final_test(trained, root, tmp_path):
    variant, out, _, accuracy = trained
    evaluator = make_trainer(root, tmp_path, variant, "DATASET.SUBSAMPLE_CLASSES", "base")
    evaluator.load_model(str(out))
    assert evaluator.test() == pytest.approx(accuracy, abs=1e-9)


def test_architecture_comes_from_the_checkpoint(trained, root, tmp_path):
    variant, out, _, accuracy = trained
    # As when a model trained on ImageNet is evaluated on EuroSAT, whose table sets REP_DIM 2048.
    evaluator = make_trainer(root, tmp_path, variant, "DATASET.SUBSAMPLE_CLASSES", "base",
                             f"TRAINER.{variant}.REP_DIM", "128")
    assert evaluator.arch.rep_dim == 128
    evaluator.load_model(str(out))
    assert evaluator.arch.rep_dim == 64
    assert evaluator.test() == pytest.approx(accuracy, abs=1e-9)


def test_new_classes_are_scored_with_class_logits(trained, root, tmp_path):
    variant, out, _, _ = trained
    evaluator = make_trainer(root, tmp_path, variant, "DATASET.SUBSAMPLE_CLASSES", "new")
    evaluator.load_model(str(out))
    evaluator.set_model_mode("eval")
    images = next(iter(evaluator.test_loader))["img"]
    context = evaluator.evaluation_context()
    assert context.scored == "class"
    with torch.no_grad():
        scored = evaluator.model_inference(images, context)
        out = evaluator.model.logits(images, evaluator.model.text_features())
    # Evaluation runs a batch in chunks of images, which only moves float rounding.
    assert torch.allclose(scored, out.logits_c, atol=1e-5, rtol=0)
    assert not torch.allclose(out.logits_c, out.logits_fused)
    assert torch.allclose(out.logits_fused, 0.7 * out.logits_c + 0.3 * out.logits_r, atol=1e-4)
    # The fused logits when the context says so; a context built on demand when none is given.
    fused = replace(context, scored="fused")
    with torch.no_grad():
        assert torch.allclose(evaluator.model_inference(images, fused), out.logits_fused, atol=1e-4, rtol=0)
        assert torch.equal(evaluator.model_inference(images), scored)


def test_checkpoint_of_the_other_method_is_refused(trained, root, tmp_path):
    variant, out, _, _ = trained
    other = "MMRLpp" if variant == "MMRL" else "MMRL"
    evaluator = make_trainer(root, tmp_path, other)
    with pytest.raises(ValueError, match=f"is a {variant} checkpoint, but the trainer is {other}"):
        evaluator.load_model(str(out))


def test_missing_model_dir_is_explained(root, tmp_path):
    evaluator = make_trainer(root, tmp_path / "out", "MMRL")
    with pytest.raises(FileNotFoundError, match=FOLDER):
        evaluator.load_model(str(tmp_path / "nowhere"))


def test_checkpoint_with_other_shapes_names_the_key(trained, root, tmp_path):
    variant, out, _, _ = trained
    checkpoint = torch.load(out / FOLDER / "model.pth.tar-5", map_location="cpu", weights_only=True)
    key = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][key] = torch.zeros(3, 3)
    (tmp_path / "bad" / FOLDER).mkdir(parents=True)
    torch.save(checkpoint, tmp_path / "bad" / FOLDER / "model.pth.tar-5")
    evaluator = make_trainer(root, tmp_path / "out", variant)
    with pytest.raises(ValueError, match=key):
        evaluator.load_model(str(tmp_path / "bad"))


def reference_checkpoint(learner, variant):
    """A checkpoint as the reference implementation writes it: the whole model under its key names."""
    p = "representation_learner."
    sd = {
        # Part of the frozen CLIP and the prompt buffer, which the reference saves too and we ignore.
        "image_encoder.conv1.weight": torch.zeros(4, 3, 2, 2),
        "text_encoder.ln_final.weight": torch.ones(4),
        "prompt_embeddings": torch.zeros(5, 77, 4),
        p + "compound_rep_tokens": learner.rep_tokens,
    }
    if variant == "MMRL":
        for i, (to_v, to_t) in enumerate(zip(learner.to_visual, learner.to_text)):
            sd[f"{p}compound_rep_tokens_r2vproj.{i}.weight"] = to_v.weight
            sd[f"{p}compound_rep_tokens_r2vproj.{i}.bias"] = to_v.bias
            sd[f"{p}compound_rep_tokens_r2tproj.{i}.weight"] = to_t.weight
            sd[f"{p}compound_rep_tokens_r2tproj.{i}.bias"] = to_t.bias
        sd["image_encoder.proj_rep"] = learner.proj_rep
    else:
        for ref, ours in (("srra_r2vproj", learner.to_visual), ("srra_r2tproj", learner.to_text)):
            sd[f"{p}{ref}.weight"] = ours.weight
            for i, res in enumerate(ours.res):
                sd[f"{p}{ref}.srra.{i}.A"] = res.A
                sd[f"{p}{ref}.srra.{i}.B"] = res.B
                sd[f"{p}{ref}.srra.{i}.bias"] = res.bias
        sd["image_encoder.A"] = learner.proj_A
        sd["image_encoder.B"] = learner.proj_B
    sd = {k: v.detach().clone() for k, v in sd.items()}
    return {"state_dict": sd, "epoch": 5, "optimizer": None, "scheduler": None, "val_result": None}


def test_reference_checkpoint_gives_identical_logits(trained, root, tmp_path):
    variant, _, trainer, accuracy = trained
    folder = tmp_path / "zoo" / FOLDER
    folder.mkdir(parents=True)
    torch.save(reference_checkpoint(trainer.model.learner, variant), folder / "model.pth.tar-5")

    evaluator = make_trainer(root, tmp_path / "out", variant, "DATASET.SUBSAMPLE_CLASSES", "base",
                             f"TRAINER.{variant}.REP_DIM", "32")
    evaluator.load_model(str(tmp_path / "zoo"))
    assert evaluator.arch == trainer.arch
    images = next(iter(evaluator.test_loader))["img"]
    with torch.no_grad():
        ours = trainer.model.logits(images, trainer.model.text_features())
        theirs = evaluator.model.logits(images, evaluator.model.text_features())
    for name in ("logits_c", "logits_r", "logits_fused"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    assert evaluator.test() == pytest.approx(accuracy, abs=1e-9)
