"""MaPLe against its published behaviour: the context initialisation, the initialisation order, the
coupling maps, training losses and logits equal to the plain published forward
(tests/reference_deep_prompts.py) in float64, and the published checkpoints' layout loading."""
import os

import pytest
import torch
from torch import nn

import datasets  # noqa: F401  (registers the datasets)
import trainers  # noqa: F401  (registers the trainers)
from mmrl.config import build_parser, setup_cfg
from mmrl.dassl.config import get_cfg_default
from mmrl.dassl.engine import build_trainer
from mmrl.dassl.optim import build_optimizer
from mmrl.dassl.utils import set_random_seed
from mmrl.demo.clip import MINI_SPEC, build_random_clip
from mmrl.model.clip_loader import tokenize
from mmrl.model.maple import MaPLeCLIP, MaPLePromptLearner
from tests import reference_deep_prompts as ref

CLASSES = ["dog", "red double decker bus", "annual_crop_land", "cat"]
DEPTH = 9


@pytest.fixture
def float64_layer_norm(mini_clip, monkeypatch):
    """CLIP's LayerNorm computes in fp32 whatever its input; for a float64 comparison it runs as a plain one."""
    monkeypatch.setattr(type(mini_clip.ln_final), "forward", nn.LayerNorm.forward)


def test_context_is_the_phrase_embedding_and_prompts_keep_the_phrase(mini_clip):
    learner = MaPLePromptLearner(mini_clip, 2, "a photo of a", DEPTH)
    phrase = mini_clip.token_embedding(tokenize(["a photo of a"]))[0, 1:3]
    assert torch.equal(learner.ctx.detach(), phrase)
    # The published prompt is the whole phrase, whose first n tokens the context replaces.
    assert learner.prefix == "a photo of a"
    # More than 4 tokens: random context and "X" placeholders, as published.
    torch.manual_seed(0)
    assert MaPLePromptLearner(mini_clip, 5, "a photo of a", DEPTH).prefix == "X X X X X"


@pytest.mark.parametrize("ctx_init", ["a photo of a", ""])
def test_initialisation_order_is_the_published_one(mini_clip, ctx_init):
    d_v, d_t = 128, 128
    torch.manual_seed(3)
    ours = MaPLePromptLearner(mini_clip, 2, ctx_init, DEPTH).state_dict()
    # The published learner's draws, in its order: ctx (random only), proj, the compound text prompts,
    # the one Linear deep-copied into every compound projection.
    torch.manual_seed(3)
    want = {}
    if not ctx_init:
        want["ctx"] = nn.init.normal_(torch.empty(2, d_t), std=0.02)
    proj = nn.Linear(d_t, d_v)
    want["proj.weight"], want["proj.bias"] = proj.weight, proj.bias
    for j in range(DEPTH - 1):
        want[f"compound_prompts_text.{j}"] = torch.empty(2, d_t)
    for j in range(DEPTH - 1):
        nn.init.normal_(want[f"compound_prompts_text.{j}"], std=0.02)
    one = nn.Linear(d_t, d_v)
    for j in range(DEPTH - 1):
        want[f"compound_prompt_projections.{j}.weight"] = one.weight
        want[f"compound_prompt_projections.{j}.bias"] = one.bias
    for key, value in want.items():
        assert torch.equal(ours[key], value), key
    assert set(ours) == set(want) | ({"ctx"} if ctx_init else set())


def test_vision_prompts_are_the_coupling_maps_of_the_text_prompts(mini_clip):
    torch.manual_seed(0)
    learner = MaPLePromptLearner(mini_clip, 2, "a photo of a", DEPTH)
    for f in learner.compound_prompt_projections:  # distinct maps, as after training
        nn.init.normal_(f.weight, std=0.1)
    text, vision = learner()
    assert len(text) == len(vision) == DEPTH
    assert torch.equal(vision[0], learner.proj(learner.ctx))
    for j in range(1, DEPTH):
        assert torch.equal(text[j], learner.compound_prompts_text[j - 1])
        assert torch.equal(vision[j], learner.compound_prompt_projections[j - 1](text[j]))
    assert vision[1].shape == (2, 128)


def _trained_looking(model: MaPLeCLIP) -> None:
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.trainable.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def test_training_and_logits_equal_the_published_forward(float64_layer_norm):
    # 5 blocks per tower (prompts at the input and at blocks 1..3, none at block 4): fast in float64.
    clip64 = build_random_clip({**MINI_SPEC, "vision_layers": 5, "transformer_layers": 5}).requires_grad_(False)
    clip64.double()
    depth = 4
    torch.manual_seed(0)
    model = MaPLeCLIP(clip64, CLASSES, 2, "a photo of a", depth).double()
    _trained_looking(model)
    optim_cfg = get_cfg_default().OPTIM
    optim_cfg.NAME, optim_cfg.LR = "sgd", 0.0035
    ours_opt = build_optimizer(model.trainable, optim_cfg)
    theirs, theirs_opt = ref.published_learner(model.trainable, 0.0035)
    tokenized = tokenize([f"a photo of a {c.replace('_', ' ')}." for c in CLASSES])
    g = torch.Generator().manual_seed(5)
    for step in range(3):
        images = torch.randn(4, 3, 32, 32, generator=g, dtype=torch.float64)
        labels = torch.randint(0, len(CLASSES), (4,), generator=g)
        loss, _ = model.forward_train(images, labels)
        ours_opt.zero_grad()
        loss.backward()
        ours_opt.step()
        text, vision = ref.maple_prompts(theirs, depth)
        z, _, _ = ref.logits(clip64, tokenized, images, text, vision)
        want = torch.nn.functional.cross_entropy(z, labels)
        theirs_opt.zero_grad()
        want.backward()
        theirs_opt.step()
        assert abs(loss.item() - want.item()) < 1e-10, step
    images = torch.randn(5, 3, 32, 32, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ours_logits = model.logits(images, model.text_features())
        text, vision = ref.maple_prompts(theirs, depth)
        want_logits, _, _ = ref.logits(clip64, tokenized, images, text, vision)
        # Teeth: without the deep prompts the logits move far beyond the tolerance.
        shallow, _, _ = ref.logits(clip64, tokenized, images, text[:1], vision[:1])
    assert (ours_logits - want_logits).abs().max() < 1e-9
    assert (shallow - want_logits).abs().max() > 1e-3


def test_a_published_checkpoint_loads_and_gives_the_published_logits(tmp_path):
    """A checkpoint in the published layout (the whole model's state dict, fp16, class-name buffers)."""
    args = ["--root", str(tmp_path / "data"), "--seed", "1", "--trainer", "MaPLe",
            "--dataset-config-file", "configs/datasets/demo.yaml", "--config-file", "configs/trainers/MaPLe/demo.yaml",
            "--output-dir", str(tmp_path / "eval"), "DATASET.NUM_SHOTS", "1", "TRAINER.MAPLE.PROMPT_DEPTH", "3"]
    cfg = setup_cfg(build_parser().parse_args(args))
    set_random_seed(cfg.SEED)
    trainer = build_trainer(cfg)
    g = torch.Generator().manual_seed(2)
    sd = {f"prompt_learner.{k}": (v + 0.05 * torch.randn(v.shape, generator=g)).half()
          for k, v in trainer.model.trainable.prompt_learner.state_dict().items()}
    sd["prompt_learner.token_prefix"] = torch.zeros(len(CLASSES), 1, 128).half()
    sd["prompt_learner.token_suffix"] = torch.zeros(len(CLASSES), 74, 128).half()
    sd["image_encoder.conv1.weight"] = trainer.clip_model.visual.conv1.weight.half()
    sd["logit_scale"] = trainer.clip_model.logit_scale.detach().clone()
    folder = tmp_path / "published" / "MultiModalPromptLearner"
    os.makedirs(folder)
    torch.save({"state_dict": sd, "epoch": 5}, folder / "model.pth.tar-5")
    trainer.load_model(str(tmp_path / "published"))
    images = torch.randn(3, 3, 32, 32, generator=g)
    classnames = trainer.dm.dataset.classnames
    tokenized = tokenize([f"a photo of a {c.replace('_', ' ')}." for c in classnames])
    full = {k: v.float() for k, v in sd.items()}
    with torch.no_grad():
        ours = trainer.model_inference(images)
        text, vision = ref.maple_prompts(full, 3)
        want, _, _ = ref.logits(trainer.clip_model, tokenized, images, text, vision)
    assert trainer.model_epoch == 5
    assert (ours - want).abs().max() < 1e-3
