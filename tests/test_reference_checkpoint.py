import pytest
import torch

from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.reference import from_reference_state_dict, is_reference_state_dict, reference_variant
from mmrl.model.representation import RepArch

PROMPTS = ["a photo of a dog.", "a photo of a cat."]
LAYERS = (3, 5, 9)


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def model_for(mini_clip, variant, seed, k=3, rep_dim=16):
    torch.manual_seed(seed)
    arch = RepArch.from_clip(mini_clip, variant, k, LAYERS, rep_dim, proj_lora_dim=8, res_lora_dim=4)
    return RepresentationCLIP(mini_clip, PROMPTS, arch, alpha=0.7, beta=0.6)


def frozen_part():
    # stands for the frozen CLIP and buffers the reference also saves; they must be ignored
    return {
        "image_encoder.conv1.weight": torch.randn(128, 3, 8, 8),
        "image_encoder.proj": torch.randn(128, 64),
        "text_encoder.positional_embedding": torch.randn(77, 128),
        "prompt_embeddings": torch.randn(2, 77, 128),
    }


def reference_mmrl_dict(learner):
    """A reference-format MMRL state dict, written with the reference's key names."""
    sd = frozen_part()
    sd["representation_learner.compound_rep_tokens"] = learner.rep_tokens.detach().clone()
    for i in range(len(learner.to_visual)):
        sd[f"representation_learner.compound_rep_tokens_r2vproj.{i}.weight"] = learner.to_visual[i].weight.detach().clone()
        sd[f"representation_learner.compound_rep_tokens_r2vproj.{i}.bias"] = learner.to_visual[i].bias.detach().clone()
        sd[f"representation_learner.compound_rep_tokens_r2tproj.{i}.weight"] = learner.to_text[i].weight.detach().clone()
        sd[f"representation_learner.compound_rep_tokens_r2tproj.{i}.bias"] = learner.to_text[i].bias.detach().clone()
    sd["image_encoder.proj_rep"] = learner.proj_rep.detach().clone()
    return sd


def reference_mmrlpp_dict(learner):
    sd = frozen_part()
    sd["representation_learner.compound_rep_tokens"] = learner.rep_tokens.detach().clone()
    for ref, srra in (("srra_r2vproj", learner.to_visual), ("srra_r2tproj", learner.to_text)):
        sd[f"representation_learner.{ref}.weight"] = srra.weight.detach().clone()
        for i in range(3):
            sd[f"representation_learner.{ref}.srra.{i}.A"] = srra.res[i].A.detach().clone()
            sd[f"representation_learner.{ref}.srra.{i}.B"] = torch.randn_like(srra.res[i].B)  # as if trained
            sd[f"representation_learner.{ref}.srra.{i}.bias"] = srra.res[i].bias.detach().clone()
    sd["image_encoder.A"] = learner.proj_A.detach().clone()
    sd["image_encoder.B"] = torch.randn_like(learner.proj_B)
    return sd


@pytest.mark.parametrize("variant", ["MMRL", "MMRLpp"])
def test_reference_checkpoint_gives_the_same_logits(mini_clip, images, variant):
    source = model_for(mini_clip, variant, seed=1)
    make_ref = reference_mmrl_dict if variant == "MMRL" else reference_mmrlpp_dict
    ref = make_ref(source.learner)
    if variant == "MMRLpp":  # give the source the "trained" B factors too
        with torch.no_grad():
            for name, srra in (("srra_r2vproj", source.learner.to_visual), ("srra_r2tproj", source.learner.to_text)):
                for i in range(3):
                    srra.res[i].B.copy_(ref[f"representation_learner.{name}.srra.{i}.B"])
            source.learner.proj_B.copy_(ref["image_encoder.B"])
    assert is_reference_state_dict(ref) and reference_variant(ref) == variant
    assert not is_reference_state_dict(source.trainable_state_dict())

    ours, arch_fields = from_reference_state_dict(ref, LAYERS)
    arch = RepArch.from_dict(arch_fields)
    assert arch == source.arch
    target = RepresentationCLIP(mini_clip, PROMPTS, arch, alpha=0.7, beta=0.6)
    target.load_trainable_state_dict(ours)
    with torch.no_grad():
        want = source.logits(images, source.text_features())
        got = target.logits(images, target.text_features())
    for name in ("logits_c", "logits_r", "logits_fused"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name


def test_mmrl_mapping_is_the_explicit_table(mini_clip):
    ref = reference_mmrl_dict(model_for(mini_clip, "MMRL", seed=1).learner)
    ours, arch = from_reference_state_dict(ref, LAYERS)
    assert sorted(ours) == sorted(
        ["rep_tokens", "proj_rep"]
        + [f"to_{m}.{i}.{p}" for m in ("visual", "text") for i in range(3) for p in ("weight", "bias")]
    )
    assert torch.equal(ours["to_text.2.bias"], ref["representation_learner.compound_rep_tokens_r2tproj.2.bias"])
    assert arch == dict(variant="MMRL", n_tokens=3, rep_layers=[3, 5, 9], rep_dim=16, visual_width=128,
                        text_width=128, embed_dim=64)


def test_layer_count_must_match_rep_layers(mini_clip):
    ref = reference_mmrl_dict(model_for(mini_clip, "MMRL", seed=1).learner)
    with pytest.raises(ValueError, match=r"maps for 3 insertion layers but REP_LAYERS \[6, 7, 8, 9, 10, 11, 12\] names 7"):
        from_reference_state_dict(ref, (6, 7, 8, 9, 10, 11, 12))


def test_incomplete_or_unknown_reference_keys_are_named(mini_clip):
    ref = reference_mmrl_dict(model_for(mini_clip, "MMRL", seed=1).learner)
    del ref["image_encoder.proj_rep"]
    with pytest.raises(ValueError, match="lacks key 'image_encoder.proj_rep'"):
        from_reference_state_dict(ref, LAYERS)
    ref = reference_mmrl_dict(model_for(mini_clip, "MMRL", seed=1).learner)
    ref["representation_learner.extra_scale"] = torch.ones(1)
    with pytest.raises(ValueError, match="unexpected trainable key 'representation_learner.extra_scale'"):
        from_reference_state_dict(ref, LAYERS)
    with pytest.raises(ValueError, match="not a reference MMRL checkpoint"):
        reference_variant({"rep_tokens": torch.zeros(1)})


@pytest.mark.parametrize("other", [dict(k=5), dict(rep_dim=32)])
def test_reference_checkpoint_of_other_shape_is_refused(mini_clip, other):
    ref = reference_mmrl_dict(model_for(mini_clip, "MMRL", seed=1, **other).learner)
    ours, _ = from_reference_state_dict(ref, LAYERS)
    model = model_for(mini_clip, "MMRL", seed=2)
    with pytest.raises(ValueError, match="checkpoint key 'rep_tokens' has shape .* another architecture or backbone"):
        model.load_trainable_state_dict(ours)
