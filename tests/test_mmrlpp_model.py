import pytest
import torch
import torch.nn.functional as F

from mmrl.model.clip_loader import tokenize
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.representation import RepArch
from mmrl.model.towers import ImageTower, TextTower

PROMPTS = ["a photo of a dog.", "a photo of a cat.", "a photo of a car."]
LAYERS = (3, 5, 9)
K = 3


def make(mini_clip, beta=0.9, variant="MMRLpp", seed=0):
    torch.manual_seed(seed)
    arch = RepArch.from_clip(mini_clip, variant, K, LAYERS, 16, proj_lora_dim=8, res_lora_dim=4)
    return RepresentationCLIP(mini_clip, PROMPTS, arch, alpha=0.7, beta=beta)


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_trainable_tensors_and_frozen_projection(mini_clip):
    model = make(mini_clip)
    learner = model.learner
    expected = [learner.rep_tokens, learner.proj_A, learner.proj_B]
    for srra in (learner.to_visual, learner.to_text):
        expected.append(srra.weight)
        for res in srra.res:
            expected += [res.A, res.B, res.bias]
    assert {id(p) for p in expected} == {id(p) for p in model.parameters() if p.requires_grad}
    assert learner.proj_A.shape == (128, 8) and learner.proj_B.shape == (8, 64)
    assert learner.to_visual.res[0].A.shape == (128, 4) and learner.to_visual.res[0].B.shape == (4, 16)
    # CLIP's proj is used, not copied and not saved
    assert learner.proj.data_ptr() == mini_clip.visual.proj.data_ptr()
    assert "proj" not in model.trainable_state_dict()


def test_at_init_every_layer_map_is_the_shared_map_and_projection_is_clips(mini_clip):
    learner = make(mini_clip).learner
    text, visual = learner()
    for srra, out in ((learner.to_visual, visual), (learner.to_text, text)):
        bias0 = srra.res[0].bias
        for res, tokens in zip(srra.res, out):
            assert torch.equal(res.B, torch.zeros_like(res.B))
            assert torch.equal(res.bias, bias0)
            assert torch.allclose(tokens, F.linear(learner.rep_tokens, srra.weight, bias0), atol=1e-6, rtol=0)
    assert torch.equal(learner.rep_projection(), mini_clip.visual.proj)


def plain_blend(x_prev, tokens, beta):
    """Positions 1..K of x_prev [L, N, D] become beta * tokens + (1 - beta) * x_prev."""
    out = x_prev.clone()
    for n in range(x_prev.shape[1]):
        out[1:1 + K, n] = beta * tokens + (1 - beta) * x_prev[1:1 + K, n]
    return out


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_prc_blending_equals_plain_recomputation(mini_clip, images, beta):
    g = torch.Generator().manual_seed(3)
    toks = [torch.randn(K, 128, generator=g) for _ in LAYERS]
    inserts = {n - 1: t for n, t in zip(LAYERS, toks)}
    image, text = ImageTower(mini_clip.visual), TextTower(mini_clip)
    tokens = tokenize(PROMPTS)
    with torch.no_grad():
        for tower, x0 in ((image, image.embed(images)), (text, text.embed(tokens))):
            got = tower.run(x0, 0, 12, inserts, beta=beta)
            x = x0
            for i in range(12):
                if i == 2:
                    t = toks[0].unsqueeze(1).expand(-1, x.shape[1], -1)
                    x = torch.cat([x[:1], t, x[1:]])
                elif i in (4, 8):
                    x = plain_blend(x, toks[LAYERS.index(i + 1)], beta)
                x = tower.run(x, i, i + 1)
            assert torch.allclose(got, x, atol=1e-5, rtol=0)


def test_beta_one_equals_mmrl_replacement(mini_clip, images):
    g = torch.Generator().manual_seed(4)
    toks = {n - 1: torch.randn(K, 128, generator=g) for n in LAYERS}
    tower = ImageTower(mini_clip.visual)
    with torch.no_grad():
        x = tower.embed(images)
        assert torch.equal(tower.run(x, 0, 12, toks, beta=1.0), tower.run(x, 0, 12, toks))
    pp = make(mini_clip, beta=1.0)
    # the same trained tensors through the MMRL path: replacement instead of blending
    pp_beta0 = make(mini_clip, beta=0.0)
    with torch.no_grad():
        w = pp.text_features()
        logits_pp = pp.logits(images, w).logits_fused
        text_tokens, visual_tokens = pp.learner()
        layer_index = [n - 1 for n in LAYERS]
        image, text = ImageTower(mini_clip.visual), TextTower(mini_clip)
        tokens = tokenize(PROMPTS)
        xt = text.run(text.embed(tokens), 0, 12, dict(zip(layer_index, text_tokens)))
        w_replace = F.normalize(text.feature(xt, tokens.argmax(-1), shift=K), dim=-1)
        xi = image.run(image.embed(images), 0, 12, dict(zip(layer_index, visual_tokens)))
        f_c = F.normalize(image.cls_feature(xi), dim=-1)
        f_r = F.normalize(image.token_feature(xi, K, pp.learner.rep_projection()), dim=-1)
        logits_replace = 0.7 * 100 * f_c @ w_replace.t() + 0.3 * 100 * f_r @ w_replace.t()
        assert torch.allclose(logits_pp, logits_replace, atol=1e-4, rtol=0)
        assert not torch.allclose(pp_beta0.logits(images, pp_beta0.text_features()).logits_fused, logits_pp, atol=1e-3)


def test_beta_can_change_between_evaluations(mini_clip, images):
    model = make(mini_clip, beta=0.9)
    with torch.no_grad():
        a = model.logits(images, model.text_features()).logits_c
        model.beta = 0.2
        b = model.logits(images, model.text_features()).logits_c
        model.beta = 0.9
        c = model.logits(images, model.text_features()).logits_c
    assert not torch.allclose(a, b) and torch.equal(a, c)


def test_gradients_reach_lora_factors(mini_clip, images):
    model = make(mini_clip)
    model.forward_train(images, torch.tensor([0, 2]), reg_weight=1.0).loss.backward()
    learner = model.learner
    # B starts at zero, so only B (not A) receives a gradient on the first step
    assert learner.proj_B.grad.abs().sum() > 0
    assert learner.to_visual.res[1].B.grad.abs().sum() > 0 and learner.to_text.res[2].B.grad.abs().sum() > 0
    assert learner.to_visual.weight.grad.abs().sum() > 0 and learner.rep_tokens.grad.abs().sum() > 0
    assert torch.equal(learner.proj_A.grad, torch.zeros_like(learner.proj_A))
    assert mini_clip.visual.proj.grad is None
