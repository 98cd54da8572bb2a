"""The class side of the text tower: the shared prefix computed once and prompts grouped by length
give the same logits as running every class's whole padded sequence (``whole_sequence_text_features``)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmrl.demo.clip import VIT_B16_SPEC, build_mini_clip, build_random_clip
from mmrl.model import towers
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.representation import RepArch

WORDS = ["red", "spotted", "mountain", "grey", "long", "tailed", "house", "river", "jet", "night"]
# Prompts of 7 to 12 tokens, as the benchmark datasets' class names give.
PROMPTS = [f"a photo of a {' '.join(WORDS[(i + j) % len(WORDS)] for j in range(1 + i % 6))}." for i in range(14)]
K = 5


def build(clip_model, variant, layers):
    torch.manual_seed(0)
    arch = RepArch.from_clip(clip_model, variant, K, layers, 32, proj_lora_dim=8, res_lora_dim=4)
    model = RepresentationCLIP(clip_model, PROMPTS, arch, alpha=0.7, beta=0.9)
    if variant == "MMRLpp":
        # B starts at zero; give the per-layer residuals a value so every layer's tokens differ.
        for res in model.learner.to_text.res:
            nn.init.normal_(res.B, std=0.1)
    return model


@pytest.fixture
def float64_layer_norm(mini_clip, monkeypatch):
    """CLIP's LayerNorm computes in fp32 whatever its input; for a float64 comparison it runs as a plain one."""
    monkeypatch.setattr(type(mini_clip.ln_final), "forward", nn.LayerNorm.forward)
    yield


@pytest.fixture
def b16_text_clip():
    # ViT-B/16 widths and heads (text 512 / 8 heads, joint 512) with 3 blocks per tower.
    return build_random_clip({**VIT_B16_SPEC, "vision_layers": 3, "transformer_layers": 3}).requires_grad_(False)


def _compare(model, image_features, dtype):
    model = model.to(dtype)
    f = image_features.to(dtype)
    want, got = model.whole_sequence_text_features(), model.text_features()
    logits_want, logits_got = 100 * f @ want.t(), 100 * f @ got.t()
    grad_want = torch.autograd.grad(logits_want.sum(), model.learner.rep_tokens)[0]
    grad_got = torch.autograd.grad(logits_got.sum(), model.learner.rep_tokens)[0]
    return (logits_got - logits_want).abs().max().item(), (grad_got - grad_want).abs().max().item() / grad_want.abs().max().item()


@pytest.mark.parametrize("variant", ["MMRL", "MMRLpp"])
def test_shared_prefix_equals_whole_sequences_mini(float64_layer_norm, variant):
    clip64 = build_mini_clip(0).requires_grad_(False)  # converted below: not the shared fixture
    features = F.normalize(torch.randn(3, 64, generator=torch.Generator().manual_seed(0)), dim=-1)
    model = build(clip64, variant, (6, 7, 8, 9, 10, 11, 12))
    # In float64 both compute the same maths: what is left is float rounding far below 1e-5.
    logits_diff, grad_rel = _compare(model, features, torch.float64)
    assert logits_diff < 1e-5 and grad_rel < 1e-9
    # In float32 the two differ by rounding only; observed at most 1.6e-5 on logits of magnitude ~10-25,
    # where the tower before the saving moves by 6e-6 just from being run on a subset of the classes.
    logits_diff, grad_rel = _compare(model, features, torch.float32)
    assert logits_diff < 5e-5 and grad_rel < 1e-5


def test_shared_prefix_equals_whole_sequences_b16_shapes(b16_text_clip, float64_layer_norm):
    features = F.normalize(torch.randn(3, 512, generator=torch.Generator().manual_seed(0)), dim=-1)
    model = build(b16_text_clip, "MMRLpp", (2, 3))
    logits_diff, grad_rel = _compare(model, features, torch.float64)
    assert logits_diff < 1e-5 and grad_rel < 1e-9
    logits_diff, grad_rel = _compare(model, features, torch.float32)
    assert logits_diff < 5e-5 and grad_rel < 1e-5


def test_class_subset_runs_only_its_prompts(mini_clip):
    model = build(mini_clip, "MMRL", (6, 7, 8, 9, 10, 11, 12))
    subset = torch.tensor([9, 2, 13, 3, 2])  # any order, repeats allowed
    with torch.no_grad():
        everything = model.text_features()
        part = model.text_features(subset)
    assert part.shape == (5, 64)
    assert torch.allclose(part, everything[subset], atol=1e-6, rtol=0)
    assert model.class_groups(subset).n_tokens < model.class_groups().n_tokens
    with pytest.raises(ValueError, match="non-empty 1-D tensor of class indices"):
        model.text_features(torch.tensor([], dtype=torch.long))


def test_groups_hold_no_padding_and_no_prefix(mini_clip):
    model = build(mini_clip, "MMRL", (6, 7, 8, 9, 10, 11, 12))
    groups = model.class_groups()
    eot = model.eot_index
    # Positions 1..EOT of each prompt, nothing else: the start token and the K tokens run once, as the prefix.
    assert groups.n_tokens == int(eot.sum())
    whole = len(PROMPTS) * (int(eot.max()) + 1 + K)
    assert groups.n_tokens + 1 + K < 0.6 * whole  # 14 prompts of 7-12 tokens: 42% fewer per block
    assert sorted(g.shape[0] + 1 for g in groups.groups) == sorted(set((eot + 1).tolist()))
    assert groups.bos.shape == (1, 1, 128)


def test_long_groups_are_split_with_the_same_features(mini_clip, monkeypatch):
    model = build(mini_clip, "MMRLpp", (6, 7, 8, 9, 10, 11, 12))
    whole = model.text_features()
    # At most 20 positions per group: the 14 prompts' 6 lengths become more groups, none over 20
    # positions unless it holds a single prompt, and every prompt in exactly one of them.
    monkeypatch.setattr(towers, "GROUP_POSITIONS", 20)
    model = build(mini_clip, "MMRLpp", (6, 7, 8, 9, 10, 11, 12))
    groups = model.class_groups()
    lengths = {g.shape[0] for g in groups.groups}
    assert len(groups.groups) > len(lengths)
    assert all(g.shape[0] * g.shape[1] <= 20 or g.shape[1] == 1 for g in groups.groups)
    assert sorted(groups.order.tolist()) == list(range(len(PROMPTS)))
    split = model.text_features()
    assert torch.allclose(split, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("positions", [2048, 20])
def test_recompute_changes_no_gradient(mini_clip, monkeypatch, positions, autocast):
    # Under autocast, backward re-runs the groups under the autocast of their forward, not in fp32.
    monkeypatch.setattr(towers, "GROUP_POSITIONS", positions)
    grads = []
    for recompute in (False, True):
        model = build(mini_clip, "MMRLpp", (6, 7, 8, 9, 10, 11, 12))
        model.recompute = recompute
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            f = model.text_features()
        f.float().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.learner.to_text.parameters()]))
    assert torch.equal(grads[0], grads[1])


def test_recompute_keeps_the_gradient_of_a_text_block_that_trains(monkeypatch):
    # A block whose weights need a gradient is recomputed per group by torch's checkpoint instead.
    monkeypatch.setattr(towers, "GROUP_POSITIONS", 20)
    grads = []
    for recompute in (False, True):
        model = build(build_mini_clip(0).requires_grad_(False), "MMRL", (6, 7, 8, 9, 10, 11, 12))
        weight = model.text_tower.blocks[8].mlp.c_proj.weight.requires_grad_(True)
        model.recompute = recompute
        model.text_features().sum().backward()
        grads.append(weight.grad)
    assert grads[1] is not None and torch.equal(grads[0], grads[1])


def test_recomputed_groups_of_a_block_share_one_tensor(mini_clip, monkeypatch):
    # The groups' outputs of one block are views of one tensor, so a step's long-lived tensors are
    # one per block, not one per group and block.
    monkeypatch.setattr(towers, "GROUP_POSITIONS", 20)
    model = build(mini_clip, "MMRL", (6, 7, 8, 9, 10, 11, 12))
    groups = model.class_groups()
    k_p = v_p = torch.zeros(1, 2, 1 + K, 64, requires_grad=True)  # mini CLIP: 2 heads of 64
    block = model.text_tower.blocks[6]
    outs = towers._RecomputedGroups.apply(block, k_p, v_p, *groups.groups)
    assert len(outs) == len(groups.groups) > 2
    assert len({o.untyped_storage().data_ptr() for o in outs}) == 1
    for o, c in zip(outs, groups.groups):
        assert torch.equal(o, towers.group_part(block, k_p, v_p, c))


def test_groups_follow_the_model_to_another_dtype():
    model = build(build_mini_clip(0).requires_grad_(False), "MMRL", (6, 7, 8, 9, 10, 11, 12))
    assert model.class_groups().bos.dtype == torch.float32
    model.to(torch.float64)
    assert model.class_groups().bos.dtype == torch.float64
