"""Reading checkpoints of the published reference implementation.

The reference saves its whole model (frozen CLIP included) under "state_dict". Only the
trainable tensors are taken, through the explicit table of key names each registered learner
declares (``reference_table``); the frozen part is ignored because our CLIP comes from the
backbone weights.
"""
from typing import Any, Dict, Mapping, Sequence, Tuple

import torch

from mmrl.model.representation import LEARNER_REGISTRY, REFERENCE_REP, learner_class


def is_reference_state_dict(sd: Mapping[str, Any]) -> bool:
    """True for a reference-implementation model state dict (not our trainable-only one)."""
    return REFERENCE_REP in sd


def reference_variant(sd: Mapping[str, Any]) -> str:
    """The registered variant whose reference maps the state dict holds."""
    if not is_reference_state_dict(sd):
        raise ValueError(f"not a reference MMRL checkpoint: key {REFERENCE_REP!r} is missing")
    names = LEARNER_REGISTRY.registered_names()
    for variant in names:
        if learner_class(variant).reference_marker in sd:
            return variant
    markers = " nor ".join(f"{learner_class(v).reference_marker} ({v})" for v in names)
    raise ValueError(f"reference checkpoint has {REFERENCE_REP!r} but neither {markers}")


def from_reference_state_dict(
    sd: Mapping[str, torch.Tensor], rep_layers: Sequence[int]
) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """(our trainable state dict, RepArch fields) from a reference model state dict.

    K and d_r come from the representation space, the widths from the maps; the reference does
    not record its insertion layers, so ``rep_layers`` (REP_LAYERS) must match their count.
    """
    variant = reference_variant(sd)
    learner = learner_class(variant)
    n_layers = 0
    while learner.reference_layer_key(n_layers) in sd:
        n_layers += 1
    if n_layers != len(rep_layers):
        raise ValueError(
            f"the reference checkpoint has maps for {n_layers} insertion layers but REP_LAYERS "
            f"{list(rep_layers)} names {len(rep_layers)}; set TRAINER.{variant}.REP_LAYERS to the layers it was trained with"
        )
    table = learner.reference_table(n_layers)
    missing = [ref for ref, _ in table if ref not in sd]
    if missing:
        raise ValueError(f"reference {variant} checkpoint lacks key {missing[0]!r}")
    known = {ref for ref, _ in table}
    unknown = [k for k in sd if k.startswith("representation_learner.") and k not in known]
    if unknown:
        raise ValueError(f"reference checkpoint has unexpected trainable key {unknown[0]!r}; it cannot be mapped")
    ours = {o: sd[r].detach().clone() for r, o in table}
    n_tokens, rep_dim = ours["rep_tokens"].shape
    arch: Dict[str, Any] = dict(variant=variant, n_tokens=int(n_tokens), rep_layers=[int(x) for x in rep_layers],
                                rep_dim=int(rep_dim))
    arch.update({k: int(v) for k, v in learner.arch_of_state_dict(ours).items()})
    return ours, arch
