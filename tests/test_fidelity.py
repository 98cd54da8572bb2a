"""Fidelity: a reference-implementation checkpoint evaluated by our code gives the reference's
logits (within 1e-4, fp32) on the same CLIP weights and images.

The reference side is the plain forward of ``tests/reference_forward.py`` (all 77 text positions,
each stock block's own forward, its key names); ours goes through the checkpoint reader and the
model the trainers use (text trimmed at the last EOT, shared lower blocks, cached text states).
"""
import pytest
import torch

from mmrl.model.clip_loader import tokenize
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.reference import from_reference_state_dict
from mmrl.model.representation import RepArch
from tests import reference_forward

LAYERS = (6, 7, 8, 9, 10, 11, 12)
K, REP_DIM = 5, 32
# Prompts of different lengths: the longest sets where our text tower stops.
PROMPTS = ["a photo of a dog.", "a photo of a red double decker bus, a type of vehicle.",
           "a centered satellite photo of Annual Crop Land.", "cat texture."]


def random_reference_state_dict(clip_model, variant, generator):
    """Trained-looking tensors under the reference's key names, plus frozen entries it also saves."""
    d_v, d_t = clip_model.visual.conv1.weight.shape[0], clip_model.ln_final.weight.shape[0]
    d = clip_model.text_projection.shape[1]

    def rand(*shape, scale=0.05):
        return scale * torch.randn(*shape, generator=generator)

    p = "representation_learner."
    sd = {p + "compound_rep_tokens": rand(K, REP_DIM, scale=0.5), "prompt_embeddings": torch.zeros(4, 77, d_t),
          "image_encoder.conv1.weight": clip_model.visual.conv1.weight.clone()}
    for i in range(len(LAYERS)):
        if variant == "MMRL":
            sd[f"{p}compound_rep_tokens_r2vproj.{i}.weight"] = rand(d_v, REP_DIM)
            sd[f"{p}compound_rep_tokens_r2vproj.{i}.bias"] = rand(d_v)
            sd[f"{p}compound_rep_tokens_r2tproj.{i}.weight"] = rand(d_t, REP_DIM)
            sd[f"{p}compound_rep_tokens_r2tproj.{i}.bias"] = rand(d_t)
        else:
            for name, width in (("srra_r2vproj", d_v), ("srra_r2tproj", d_t)):
                sd[f"{p}{name}.srra.{i}.A"] = rand(width, 4)
                sd[f"{p}{name}.srra.{i}.B"] = rand(4, REP_DIM)  # non-zero: a trained residual
                sd[f"{p}{name}.srra.{i}.bias"] = rand(width)
    if variant == "MMRL":
        sd["image_encoder.proj_rep"] = rand(d_v, d, scale=d_v ** -0.5)
    else:
        sd[p + "srra_r2vproj.weight"] = rand(d_v, REP_DIM)
        sd[p + "srra_r2tproj.weight"] = rand(d_t, REP_DIM)
        sd["image_encoder.A"] = rand(d_v, 16)
        sd["image_encoder.B"] = rand(16, d)
    return sd


@pytest.mark.parametrize("variant, beta", [("MMRL", None), ("MMRLpp", 0.9), ("MMRLpp", 0.3)])
def test_reference_checkpoint_logits_match_the_reference_forward(mini_clip, variant, beta):
    g = torch.Generator().manual_seed(7)
    sd = random_reference_state_dict(mini_clip, variant, g)
    images = torch.randn(6, 3, 32, 32, generator=g)

    ours_sd, arch_fields = from_reference_state_dict(sd, LAYERS)
    model = RepresentationCLIP(mini_clip, PROMPTS, RepArch.from_dict(arch_fields), alpha=0.7,
                               beta=1.0 if beta is None else beta)
    model.load_trainable_state_dict(ours_sd)
    with torch.no_grad():
        ours = model.logits(images, model.text_features())
        theirs = reference_forward.logits_from_reference_state_dict(
            mini_clip, sd, tokenize(PROMPTS), images, LAYERS, alpha=0.7, beta=beta)
    for name, a, b in zip(("logits", "logits_rep", "logits_fusion"), (ours.logits_c, ours.logits_r, ours.logits_fused), theirs):
        assert (a - b).abs().max() < 1e-4, name
    # The check has teeth: the representation branch moves the logits well beyond the tolerance.
    assert (theirs[0] - theirs[1]).abs().max() > 1e-2
