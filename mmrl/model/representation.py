"""Representation learners: every trainable tensor of MMRL and MMRL++.

A learner owns the shared representation space R (K x d_r), the per-layer maps of R into each
tower's width, and the projection of the image tower's representation tokens. It knows nothing
about CLIP beyond the widths recorded in :class:`RepArch`.
"""
import copy
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("MMRL", "MMRLpp")


# RepArch field -> its key under TRAINER.<variant>.
_CONFIG_KEYS = {
    "n_tokens": "N_REP_TOKENS",
    "rep_layers": "REP_LAYERS",
    "rep_dim": "REP_DIM",
    "proj_lora_dim": "PROJ_LORA_DIM",
    "res_lora_dim": "RES_LORA_DIM",
}


def clip_widths(clip_model: nn.Module) -> Tuple[int, int, int]:
    """(d_v, d_t, d): a CLIP's visual width, text width and joint embedding width."""
    return (
        clip_model.visual.conv1.weight.shape[0],
        clip_model.ln_final.weight.shape[0],
        clip_model.text_projection.shape[1],
    )


def clip_depth(clip_model: nn.Module) -> int:
    """Blocks of the shallower tower: the highest insertion block both towers have."""
    return min(len(clip_model.visual.transformer.resblocks), len(clip_model.transformer.resblocks))


@dataclass(frozen=True)
class RepArch:
    """What defines the shapes of a learner; saved with checkpoints so a model reloads as trained."""

    variant: str  # "MMRL" | "MMRLpp"
    n_tokens: int  # K
    rep_layers: Tuple[int, ...]  # 1-based block numbers, sorted, unique
    rep_dim: int  # d_r
    visual_width: int  # d_v
    text_width: int  # d_t
    embed_dim: int  # d, CLIP's joint space
    proj_lora_dim: int = 0  # MMRL++ only
    res_lora_dim: int = 0  # MMRL++ only

    def key(self, name: str) -> str:
        """The config key a field comes from (errors name what the user sets), or the backbone's
        width it is read from."""
        if name in _CONFIG_KEYS:
            return f"TRAINER.{self.variant}.{_CONFIG_KEYS[name]}"
        return f"the CLIP backbone's {name.replace('_', ' ')}"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rep_layers", tuple(int(x) for x in self.rep_layers))
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown representation variant {self.variant!r}; use one of {VARIANTS}")
        layers = self.rep_layers
        key = self.key("rep_layers")
        if not layers:
            raise ValueError(f"{key} is empty; give the 1-based blocks that receive tokens, e.g. [6,7,8,9,10,11,12]")
        if list(layers) != sorted(set(layers)):
            raise ValueError(f"{key} {list(layers)} must be sorted and without repeats")
        if layers[0] < 1:
            raise ValueError(f"{key} {list(layers)}: block numbers are 1-based, {layers[0]} is invalid")
        names = ["n_tokens", "rep_dim", "visual_width", "text_width", "embed_dim"]
        if self.variant == "MMRLpp":
            names += ["proj_lora_dim", "res_lora_dim"]
        for name in names:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{self.key(name)} must be at least 1, got {getattr(self, name)}")

    def check_layers(self, n_layers: int) -> None:
        """Raise unless every insertion block exists in a tower of ``n_layers`` blocks."""
        if self.rep_layers[-1] > n_layers:
            raise ValueError(
                f"{self.key('rep_layers')} {list(self.rep_layers)} exceed the backbone's {n_layers} blocks; "
                f"use numbers in 1..{n_layers}"
            )

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["rep_layers"] = list(self.rep_layers)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RepArch":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown RepArch key(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(d))

    @classmethod
    def from_clip(
        cls,
        clip_model: nn.Module,
        variant: str,
        n_tokens: int,
        rep_layers: Sequence[int],
        rep_dim: int,
        proj_lora_dim: int = 0,
        res_lora_dim: int = 0,
    ) -> "RepArch":
        """The architecture for a given CLIP, its widths read from the model; layers validated."""
        visual_width, text_width, embed_dim = clip_widths(clip_model)
        arch = cls(
            variant=variant,
            n_tokens=n_tokens,
            rep_layers=tuple(rep_layers),
            rep_dim=rep_dim,
            visual_width=visual_width,
            text_width=text_width,
            embed_dim=embed_dim,
            proj_lora_dim=proj_lora_dim if variant == "MMRLpp" else 0,
            res_lora_dim=res_lora_dim if variant == "MMRLpp" else 0,
        )
        arch.check_layers(clip_depth(clip_model))
        return arch


def _shared_rep(arch: RepArch) -> nn.Parameter:
    r = torch.empty(arch.n_tokens, arch.rep_dim)
    nn.init.normal_(r, std=0.02)
    return nn.Parameter(r)


def _copies_of_one_linear(d_in: int, d_out: int, n: int) -> nn.ModuleList:
    # Kept as the reference implementation does: one Linear is initialised and deep-copied, so
    # every insertion layer's map starts from the same weights (they then train independently).
    base = nn.Linear(d_in, d_out)
    return nn.ModuleList([copy.deepcopy(base) for _ in range(n)])


class MMRLLearner(nn.Module):
    """MMRL: R, one independent Linear per insertion layer and modality, and P_v^r (d_v x d)."""

    variant = "MMRL"
    # At every insertion layer after the first, the tokens replace the previous token outputs.
    splice = "replace"

    def __init__(self, arch: RepArch, proj: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        if arch.variant != self.variant:
            raise ValueError(f"MMRLLearner needs variant 'MMRL', got {arch.variant!r}")
        self.arch = arch
        n = len(arch.rep_layers)
        self.rep_tokens = _shared_rep(arch)  # [K, d_r]
        self.to_visual = _copies_of_one_linear(arch.rep_dim, arch.visual_width, n)
        self.to_text = _copies_of_one_linear(arch.rep_dim, arch.text_width, n)
        # Random, not a copy of CLIP's proj, as in the reference.
        self.proj_rep = nn.Parameter(arch.visual_width ** -0.5 * torch.randn(arch.visual_width, arch.embed_dim))

    def forward(self) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """(text tokens, visual tokens): per insertion layer, [K, d_t] and [K, d_v]."""
        text = [f(self.rep_tokens) for f in self.to_text]
        visual = [f(self.rep_tokens) for f in self.to_visual]
        return text, visual

    def rep_projection(self) -> torch.Tensor:
        """P_v^r, [d_v, d]."""
        return self.proj_rep


class LowRankResidual(nn.Module):
    """One insertion layer's part of SRRA: residual A @ B on the shared weight, and a bias."""

    def __init__(self, d_out: int, d_in: int, rank: int, bias: torch.Tensor) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(d_out, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(rank, d_in))
        self.bias = nn.Parameter(bias.detach().clone())


class SharedResidualAligner(nn.Module):
    """SRRA: R_i = R (W + A_i B_i)^T + b_i with one shared W [d_out, d_in] for all layers."""

    def __init__(self, d_in: int, d_out: int, n_layers: int, rank: int) -> None:
        super().__init__()
        shared = nn.Linear(d_in, d_out)  # W and the biases start as a PyTorch Linear would
        self.weight = nn.Parameter(shared.weight.detach().clone())
        self.res = nn.ModuleList([LowRankResidual(d_out, d_in, rank, shared.bias) for _ in range(n_layers)])

    def forward(self, rep: torch.Tensor) -> List[torch.Tensor]:
        """rep [K, d_in] -> per layer [K, d_out]."""
        return [F.linear(rep, self.weight + r.A @ r.B, r.bias) for r in self.res]


class MMRLppLearner(nn.Module):
    """MMRL++: R, SRRA maps per modality, and a low-rank update A @ B of CLIP's frozen proj."""

    variant = "MMRLpp"
    # PRC: after the first insertion layer, tokens are blended with the previous outputs (beta).
    splice = "blend"

    def __init__(self, arch: RepArch, proj: torch.Tensor) -> None:
        super().__init__()
        if arch.variant != self.variant:
            raise ValueError(f"MMRLppLearner needs variant 'MMRLpp', got {arch.variant!r}")
        if tuple(proj.shape) != (arch.visual_width, arch.embed_dim):
            raise ValueError(
                f"CLIP's visual proj has shape {list(proj.shape)}, the architecture expects "
                f"[{arch.visual_width}, {arch.embed_dim}]"
            )
        self.arch = arch
        n = len(arch.rep_layers)
        self.rep_tokens = _shared_rep(arch)  # [K, d_r]
        self.to_visual = SharedResidualAligner(arch.rep_dim, arch.visual_width, n, arch.res_lora_dim)
        self.to_text = SharedResidualAligner(arch.rep_dim, arch.text_width, n, arch.res_lora_dim)
        self.proj_A = nn.Parameter(torch.empty(arch.visual_width, arch.proj_lora_dim))
        nn.init.kaiming_uniform_(self.proj_A, a=math.sqrt(5))
        self.proj_B = nn.Parameter(torch.zeros(arch.proj_lora_dim, arch.embed_dim))
        # CLIP's frozen projection, not saved: it comes with the backbone.
        self.register_buffer("proj", proj.detach(), persistent=False)

    def forward(self) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """(text tokens, visual tokens): per insertion layer, [K, d_t] and [K, d_v]."""
        return self.to_text(self.rep_tokens), self.to_visual(self.rep_tokens)

    def rep_projection(self) -> torch.Tensor:
        """proj + A @ B, [d_v, d]; equals CLIP's proj at initialisation."""
        return self.proj.to(self.proj_A.dtype) + self.proj_A @ self.proj_B


LEARNERS = {cls.variant: cls for cls in (MMRLLearner, MMRLppLearner)}


def build_learner(arch: RepArch, clip_model: nn.Module) -> nn.Module:
    """The learner of ``arch.variant`` for this CLIP (widths and layer range checked against it)."""
    widths = clip_widths(clip_model)
    if widths != (arch.visual_width, arch.text_width, arch.embed_dim):
        raise ValueError(
            f"the architecture's widths (visual {arch.visual_width}, text {arch.text_width}, embed {arch.embed_dim}) "
            f"do not match the CLIP backbone's (visual {widths[0]}, text {widths[1]}, embed {widths[2]}); "
            "the checkpoint was trained with another backbone"
        )
    arch.check_layers(clip_depth(clip_model))
    return LEARNERS[arch.variant](arch, clip_model.visual.proj)
