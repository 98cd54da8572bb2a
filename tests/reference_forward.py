"""The reference implementation's forward pass, written out plainly for tests to compare against.

Each stock CLIP block runs through its own ``forward`` (a copy whose ``attn_mask`` is set to a
fresh causal mask for the text tower), every text sequence keeps all 77 (+K) positions, and the
representation tokens are inserted at the first insertion block and replaced (MMRL) or blended
with the previous block's token outputs (MMRL++, ``beta``) at the later ones.
"""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


def _splice(x, number, layers, tokens_per_layer, k, beta):
    t = tokens_per_layer[layers.index(number)].unsqueeze(1).expand(-1, x.shape[1], -1)
    if number == layers[0]:
        return torch.cat([x[:1], t, x[1:]])
    if beta is None:
        return torch.cat([x[:1], t, x[1 + k:]])
    return torch.cat([x[:1], beta * t + (1 - beta) * x[1:1 + k], x[1 + k:]])


def image_features(visual, images, layers: Sequence[int], tokens_per_layer: List[torch.Tensor], k: int,
                   proj_rep: torch.Tensor, beta: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(f_c, f_r), unnormalised: class-token feature and mean representation-token feature."""
    layers = list(layers)
    x = visual.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding).permute(1, 0, 2)
    for i, block in enumerate(visual.transformer.resblocks):
        if i + 1 in layers:
            x = _splice(x, i + 1, layers, tokens_per_layer, k, beta)
        x = block(x)
    x = x.permute(1, 0, 2)
    f_c = visual.ln_post(x[:, 0]) @ visual.proj
    f_r = visual.ln_post(x[:, 1:1 + k]).mean(dim=1) @ proj_rep
    return f_c, f_r


def text_features(model, tokens, layers: Sequence[int], tokens_per_layer: List[torch.Tensor], k: int,
                  beta: Optional[float] = None, seen_lengths: Optional[list] = None) -> torch.Tensor:
    """Unnormalised text features [N, d], read at the EOT position shifted by K."""
    layers = list(layers)
    x = (model.token_embedding(tokens) + model.positional_embedding).permute(1, 0, 2)
    for i, block in enumerate(model.transformer.resblocks):
        if i + 1 in layers:
            x = _splice(x, i + 1, layers, tokens_per_layer, k, beta)
        n = x.shape[0]
        own = copy.deepcopy(block)
        own.attn_mask = torch.triu(torch.full((n, n), float("-inf")), diagonal=1)
        if seen_lengths is not None:
            seen_lengths.append(n)
        x = own(x)
    x = model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1) + k] @ model.text_projection


def logits_from_reference_state_dict(clip_model, sd, tokens, images, layers: Sequence[int], alpha: float,
                                     beta: Optional[float] = None):
    """(logits, logits_rep, logits_fusion) as the reference computes them from its checkpoint's
    tensors (its key names), for MMRL (beta None) or MMRL++ (the SRRA maps, proj + A @ B)."""
    p = "representation_learner."
    rep = sd[p + "compound_rep_tokens"]
    k, n = rep.shape[0], len(layers)
    if beta is None:
        text_tokens = [F.linear(rep, sd[f"{p}compound_rep_tokens_r2tproj.{i}.weight"],
                                sd[f"{p}compound_rep_tokens_r2tproj.{i}.bias"]) for i in range(n)]
        visual_tokens = [F.linear(rep, sd[f"{p}compound_rep_tokens_r2vproj.{i}.weight"],
                                  sd[f"{p}compound_rep_tokens_r2vproj.{i}.bias"]) for i in range(n)]
        proj_rep = sd["image_encoder.proj_rep"]
    else:
        def srra(name, i):
            weight = sd[f"{p}{name}.weight"] + sd[f"{p}{name}.srra.{i}.A"] @ sd[f"{p}{name}.srra.{i}.B"]
            return F.linear(rep, weight, sd[f"{p}{name}.srra.{i}.bias"])
        text_tokens = [srra("srra_r2tproj", i) for i in range(n)]
        visual_tokens = [srra("srra_r2vproj", i) for i in range(n)]
        proj_rep = clip_model.visual.proj + sd["image_encoder.A"] @ sd["image_encoder.B"]
    w = F.normalize(text_features(clip_model, tokens, layers, text_tokens, k, beta), dim=-1)
    f_c, f_r = image_features(clip_model.visual, images, layers, visual_tokens, k, proj_rep, beta)
    logits = 100.0 * F.normalize(f_c, dim=-1) @ w.t()
    logits_rep = 100.0 * F.normalize(f_r, dim=-1) @ w.t()
    return logits, logits_rep, alpha * logits + (1 - alpha) * logits_rep
