"""Reading checkpoints of the published reference implementation.

The reference saves its whole model (frozen CLIP included) under "state_dict". Only the
trainable tensors are taken, through an explicit table of key names; the frozen part is
ignored because our CLIP comes from the backbone weights.
"""
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch

_REP = "representation_learner.compound_rep_tokens"
_MMRL_V = "representation_learner.compound_rep_tokens_r2vproj"
_MMRL_T = "representation_learner.compound_rep_tokens_r2tproj"
_PP_V = "representation_learner.srra_r2vproj"
_PP_T = "representation_learner.srra_r2tproj"


def key_table(variant: str, n_layers: int) -> List[Tuple[str, str]]:
    """(reference key, our key) for every trainable tensor of a model with ``n_layers`` insertion layers."""
    table = [(_REP, "rep_tokens")]
    if variant == "MMRL":
        for i in range(n_layers):
            for p in ("weight", "bias"):
                table.append((f"{_MMRL_V}.{i}.{p}", f"to_visual.{i}.{p}"))
                table.append((f"{_MMRL_T}.{i}.{p}", f"to_text.{i}.{p}"))
        table.append(("image_encoder.proj_rep", "proj_rep"))
    elif variant == "MMRLpp":
        for ref, ours in ((_PP_V, "to_visual"), (_PP_T, "to_text")):
            table.append((f"{ref}.weight", f"{ours}.weight"))
            for i in range(n_layers):
                for p in ("A", "B", "bias"):
                    table.append((f"{ref}.srra.{i}.{p}", f"{ours}.res.{i}.{p}"))
        table.append(("image_encoder.A", "proj_A"))
        table.append(("image_encoder.B", "proj_B"))
    else:
        raise ValueError(f"unknown variant {variant!r}; use 'MMRL' or 'MMRLpp'")
    return table


def is_reference_state_dict(sd: Mapping[str, Any]) -> bool:
    """True for a reference-implementation model state dict (not our trainable-only one)."""
    return _REP in sd


def reference_variant(sd: Mapping[str, Any]) -> str:
    """"MMRL" or "MMRLpp", from which maps the reference state dict holds."""
    if not is_reference_state_dict(sd):
        raise ValueError(f"not a reference MMRL checkpoint: key {_REP!r} is missing")
    if f"{_PP_V}.weight" in sd:
        return "MMRLpp"
    if f"{_MMRL_V}.0.weight" in sd:
        return "MMRL"
    raise ValueError(
        f"reference checkpoint has {_REP!r} but neither {_MMRL_V}.0.weight (MMRL) nor {_PP_V}.weight (MMRL++)"
    )


def _count_layers(sd: Mapping[str, Any], variant: str) -> int:
    probe = (lambda i: f"{_MMRL_V}.{i}.weight") if variant == "MMRL" else (lambda i: f"{_PP_V}.srra.{i}.A")
    n = 0
    while probe(n) in sd:
        n += 1
    return n


def from_reference_state_dict(
    sd: Mapping[str, torch.Tensor], rep_layers: Sequence[int]
) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """(our trainable state dict, RepArch fields) from a reference model state dict.

    K and d_r come from the representation space, the widths from the maps; the reference does
    not record its insertion layers, so ``rep_layers`` (REP_LAYERS) must match their count.
    """
    variant = reference_variant(sd)
    n_layers = _count_layers(sd, variant)
    if n_layers != len(rep_layers):
        raise ValueError(
            f"the reference checkpoint has maps for {n_layers} insertion layers but REP_LAYERS "
            f"{list(rep_layers)} names {len(rep_layers)}; set TRAINER.{variant}.REP_LAYERS to the layers it was trained with"
        )
    table = key_table(variant, n_layers)
    missing = [ref for ref, _ in table if ref not in sd]
    if missing:
        raise ValueError(f"reference {variant} checkpoint lacks key {missing[0]!r}")
    known = {ref for ref, _ in table}
    unknown = [k for k in sd if k.startswith("representation_learner.") and k not in known]
    if unknown:
        raise ValueError(f"reference checkpoint has unexpected trainable key {unknown[0]!r}; it cannot be mapped")
    ours = {o: sd[r].detach().clone() for r, o in table}
    n_tokens, rep_dim = ours["rep_tokens"].shape
    visual_width = ours["to_visual.0.weight" if variant == "MMRL" else "to_visual.weight"].shape[0]
    text_width = ours["to_text.0.weight" if variant == "MMRL" else "to_text.weight"].shape[0]
    arch: Dict[str, Any] = dict(
        variant=variant,
        n_tokens=int(n_tokens),
        rep_layers=[int(x) for x in rep_layers],
        rep_dim=int(rep_dim),
        visual_width=int(visual_width),
        text_width=int(text_width),
        embed_dim=int(ours["proj_rep" if variant == "MMRL" else "proj_B"].shape[1]),
        proj_lora_dim=int(ours["proj_A"].shape[1]) if variant == "MMRLpp" else 0,
        res_lora_dim=int(ours["to_visual.res.0.A"].shape[1]) if variant == "MMRLpp" else 0,
    )
    return ours, arch
