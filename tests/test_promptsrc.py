"""PromptSRC against its published behaviour: GPA's epoch weights (exact), the aggregated prompts a
training run ends with (the weighted sum of each epoch's prompts, saved and resumed), the
initialisation order, the frozen ensemble text features, and training losses and logits equal to the
plain published forward (tests/reference_deep_prompts.py) in float64."""
import numpy as np
import pytest
import torch
from torch import nn

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from mmrl.config import build_parser, setup_cfg
from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.engine import build_trainer
from mmrl.dassl.optim import build_optimizer
from mmrl.dassl.utils import load_checkpoint, set_random_seed
from mmrl.demo.clip import MINI_SPEC, build_random_clip
from mmrl.model.clip_loader import tokenize
from mmrl.model.promptsrc import PromptSRCCLIP, PromptSRCPrompts, gpa_weights
from mmrl.model.templates import IMAGENET_TEMPLATES
from tests import reference_deep_prompts as ref

CLASSES = ["dog", "red double decker bus", "annual_crop_land", "cat"]


def published_gpa(n, mean, std):
    gauss = lambda x: (1 / (std * np.sqrt(2 * np.pi))) * np.exp(-0.5 * ((x - mean) / std) ** 2)  # noqa: E731
    g = np.array([gauss(a) for a in range(1, n + 1)])
    return g / sum(g)


@pytest.mark.parametrize("n, mean, std", [(20, 15, 1), (20, 6, 10), (50, 30, 30), (50, 45, 5), (5, 4, 1)])
def test_gpa_weights_are_the_published_numbers(n, mean, std):
    assert gpa_weights(n, mean, std) == published_gpa(n, mean, std).tolist()


def test_gpa_weights_pinned():
    w = gpa_weights(20, 15, 1)  # base-to-novel: almost all weight on epochs 13..17
    assert round(w[14], 6) == 0.398942 and round(w[13], 6) == round(w[15], 6) == 0.241971
    assert w[0] < 1e-40 and abs(sum(w) - 1) < 1e-15
    assert [round(x, 6) for x in gpa_weights(5, 4, 1)] == [0.004708, 0.057357, 0.257058, 0.423818, 0.257058]
    assert gpa_weights(1, 15, 1) == [1.0]
    with pytest.raises(ValueError, match="GPA_STD"):
        gpa_weights(20, 15, 0)


@pytest.mark.parametrize("dataset, task, gpa", [
    ("DescribableTextures", "FS", (45, 5)), ("EuroSAT", "FS", (45, 5)), ("ImageNet", "FS", (30, 30)),
    ("EuroSAT", "B2N", (30, 30)),
])
def test_few_shot_gpa_values_are_the_published_per_dataset_ones(tmp_path, dataset, task, gpa):
    """The published few-shot config's two GPA settings, by dataset, from dataset_overrides.yaml into
    TRAINER.PROMPTSRC (the method's node, not TRAINER.PromptSRC); the log line names them."""
    from mmrl.config import assemble_config

    ds = tmp_path / "ds.yaml"
    ds.write_text(f'DATASET:\n  NAME: "{dataset}"\n')
    out = assemble_config(build_parser().parse_args([
        "--trainer", "PromptSRC", "--config-file", "configs/trainers/PromptSRC/vit_b16_few_shot.yaml",
        "--dataset-config-file", str(ds), "TASK", task]))
    assert (out.cfg.TRAINER.PROMPTSRC.GPA_MEAN, out.cfg.TRAINER.PROMPTSRC.GPA_STD) == gpa
    assert out.cfg.OPTIM.MAX_EPOCH == 50
    applied = "TRAINER.PROMPTSRC.GPA_MEAN=45 TRAINER.PROMPTSRC.GPA_STD=5" if gpa == (45, 5) else "none"
    assert out.dataset_values_line() == f"Per-dataset values for {dataset} ({task}): {applied}"


@pytest.mark.parametrize("ctx_init", ["a photo of a", ""])
def test_initialisation_order_is_the_published_one(mini_clip, ctx_init):
    torch.manual_seed(4)
    ours = PromptSRCPrompts(mini_clip, 4, 4, ctx_init, 9, 9).state_dict()
    # The published draws, in order: vision prompts (input, then blocks 1..8), deep text prompts, ctx.
    torch.manual_seed(4)
    want = {"image_encoder.VPT": nn.init.normal_(torch.empty(4, 128), std=0.02)}
    for j in range(1, 9):
        want[f"image_encoder.transformer.resblocks.{j}.VPT_shallow"] = nn.init.normal_(torch.empty(4, 128), std=0.02)
    for j in range(1, 9):
        want[f"text_encoder.transformer.resblocks.{j}.VPT_shallow"] = nn.init.normal_(torch.empty(4, 128), std=0.02)
    if ctx_init:
        want["prompt_learner.ctx"] = mini_clip.token_embedding(tokenize([ctx_init]))[0, 1:5]
    else:
        want["prompt_learner.ctx"] = nn.init.normal_(torch.empty(4, 128), std=0.02)
    assert set(ours) == set(want)
    for key, value in want.items():
        assert torch.equal(ours[key], value), key


@pytest.fixture
def float64_layer_norm(mini_clip, monkeypatch):
    """CLIP's LayerNorm computes in fp32 whatever its input; for a float64 comparison it runs as a plain one."""
    monkeypatch.setattr(type(mini_clip.ln_final), "forward", nn.LayerNorm.forward)


def test_frozen_text_features_are_the_published_template_ensemble(float64_layer_norm):
    clip64 = build_random_clip({**MINI_SPEC, "vision_layers": 1, "transformer_layers": 1}).requires_grad_(False)
    clip64.double()
    model = PromptSRCCLIP(clip64, CLASSES, 4, 4, "a photo of a", 1, 1, 25, 10)
    want = ref.promptsrc_teacher_text(clip64, CLASSES, tokenize)
    assert len(model.templates) == 60 and model.w_zs.shape == (len(CLASSES), 64)
    assert (model.w_zs - want).abs().max() < 1e-12


def test_training_and_logits_equal_the_published_forward(float64_layer_norm):
    # 5 blocks per tower; text prompts at blocks 0..3, vision prompts at blocks 0..2.
    clip64 = build_random_clip({**MINI_SPEC, "vision_layers": 5, "transformer_layers": 5}).requires_grad_(False)
    clip64.double()
    depth_text, depth_vision = 4, 3
    torch.manual_seed(0)
    # Three of the 60 templates (the whole ensemble is the test above).
    model = PromptSRCCLIP(clip64, CLASSES, 4, 4, "a photo of a", depth_text, depth_vision, 25, 10,
                          templates=IMAGENET_TEMPLATES[:3]).double()
    teacher = ref.promptsrc_teacher_text(clip64, CLASSES, tokenize, IMAGENET_TEMPLATES[:3])
    assert (model.w_zs - teacher).abs().max() < 1e-12
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.trainable.parameters():  # trained-looking prompts
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    optim_cfg = get_cfg_default().OPTIM
    optim_cfg.NAME, optim_cfg.LR = "sgd", 0.0025
    ours_opt = build_optimizer(model.trainable, optim_cfg)
    theirs, theirs_opt = ref.published_learner(model.trainable, 0.0025)
    tokenized = tokenize([f"a photo of a {c.replace('_', ' ')}." for c in CLASSES])
    for step in range(3):
        images = torch.randn(4, 3, 32, 32, generator=g, dtype=torch.float64)
        labels = torch.randint(0, len(CLASSES), (4,), generator=g)
        terms, _ = model.forward_train(images, labels)
        ours_opt.zero_grad()
        terms["loss"].backward()
        ours_opt.step()
        text, vision = ref.promptsrc_prompts(theirs, depth_text, depth_vision)
        want, _ = ref.promptsrc_loss(clip64, tokenized, images, labels, text, vision, teacher, 25, 10)
        theirs_opt.zero_grad()
        want.backward()
        theirs_opt.step()
        assert abs(terms["loss"].item() - want.item()) < 1e-10, step
        # Teeth: every regulariser is a visible part of the loss.
        assert min(terms["kl"].item(), terms["text"].item(), terms["image"].item()) > 1e-4
    images = torch.randn(5, 3, 32, 32, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ours_logits = model.logits(images, model.text_features())
        text, vision = ref.promptsrc_prompts(theirs, depth_text, depth_vision)
        want_logits, _, _ = ref.logits(clip64, tokenized, images, text, vision)
    assert (ours_logits - want_logits).abs().max() < 1e-9


def test_the_run_ends_with_the_gaussian_aggregate_of_its_epochs(tmp_path):
    out = tmp_path / "run"
    args = ["--root", str(tmp_path / "data"), "--seed", "1", "--trainer", "PromptSRC",
            "--dataset-config-file", "configs/datasets/demo.yaml", "--config-file", "configs/trainers/PromptSRC/demo.yaml",
            "--output-dir", str(out), "DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH", "3", "TEST.NO_TEST", "True",
            "TRAINER.PROMPTSRC.GPA_MEAN", "2", "TRAINER.PROMPTSRC.GPA_STD", "1",
            "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "3", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "3"]
    cfg = setup_cfg(build_parser().parse_args(args))
    set_random_seed(cfg.SEED)
    trainer = build_trainer(cfg)
    per_epoch = []
    aggregate = trainer.aggregate

    def spy(epoch):
        per_epoch.append({k: v.detach().clone() for k, v in trainer.model.trainable.state_dict().items()})
        aggregate(epoch)

    trainer.aggregate = spy
    trainer.train()
    w = published_gpa(3, 2, 1)
    final = trainer.model.trainable.state_dict()
    for key, value in final.items():
        want = sum(float(w[e]) * per_epoch[e][key] for e in range(3))
        assert torch.allclose(value, want, rtol=0, atol=1e-7), key
        # Teeth: the prompts moved between epochs, so the aggregate is none of them.
        assert (per_epoch[2][key] - value).abs().max() > 1e-7, key
    # The last checkpoint holds the aggregated prompts; each one the running sum a resume continues from.
    saved = load_checkpoint(str(out / "VLPromptLearner" / "model.pth.tar-3"))
    for key, value in final.items():
        assert torch.equal(saved["state_dict"][key], value)
    trainer.gpa_sum = None
    trainer.check_checkpoint(saved, "model.pth.tar-3", resuming=True)  # what a resume reads
    assert set(trainer.gpa_sum) == set(final)
    for key, value in saved["gpa"].items():
        assert torch.equal(trainer.gpa_sum[key], value)
