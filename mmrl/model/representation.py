"""Representation learners: every trainable tensor of MMRL and MMRL++.

A learner owns the shared representation space R (K x d_r), the per-layer maps of R into each
tower's width, and the projection of the image tower's representation tokens. It knows nothing
about CLIP beyond the widths recorded in :class:`RepArch`.
"""
import copy
import math
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmrl.dassl.utils.registry import Registry

# RepArch field -> its key under TRAINER.<variant>, for the fields every learner has.
_CONFIG_KEYS = {
    "n_tokens": "N_REP_TOKENS",
    "rep_layers": "REP_LAYERS",
    "rep_dim": "REP_DIM",
}
_WIDTHS = ("visual_width", "text_width", "embed_dim")
_COMMON = ("n_tokens", "rep_layers", "rep_dim") + _WIDTHS
# The representation space, under the same name in every variant of the reference implementation.
REFERENCE_REP = "representation_learner.compound_rep_tokens"


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


class RepresentationLearner(nn.Module):
    """Base of the registered learners: what a variant declares about itself.

    - ``variant``: its name, the trainer's name and ``TRAINER.<variant>``.
    - ``arch_fields``: its own architecture fields beyond those every learner has, each with its
      config key under ``TRAINER.<variant>``.
    - ``model_keys``: keyword arguments of :class:`~mmrl.model.mmrl.RepresentationCLIP` it uses,
      each with its config key.
    - ``splice``: "replace" (tokens replace the previous token outputs at every insertion layer
      after the first) or "blend" (they are blended with them, weight beta).
    - ``reference_table`` / ``reference_marker``: the reference implementation's key names.
    """

    variant: str = ""
    arch_fields: Dict[str, str] = {}
    model_keys: Dict[str, str] = {"alpha": "ALPHA"}
    splice = "replace"
    # A key of the reference state dict that only this variant has (its first insertion layer's map).
    reference_marker = ""

    def __init__(self, arch: "RepArch") -> None:
        super().__init__()
        if arch.variant != self.variant:
            raise ValueError(f"{type(self).__name__} needs variant {self.variant!r}, got {arch.variant!r}")
        self.arch = arch

    @classmethod
    def reference_table(cls, n_layers: int) -> List[Tuple[str, str]]:
        """(reference key, our key) for every trainable tensor with ``n_layers`` insertion layers."""
        raise NotImplementedError

    @classmethod
    def reference_layer_key(cls, i: int) -> str:
        """The reference key that exists once per insertion layer ``i`` (0-based): counts them."""
        raise NotImplementedError

    @classmethod
    def arch_of_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> Dict[str, int]:
        """The widths and own fields of a learner, read from its trainable state dict (our key names)."""
        raise NotImplementedError

    def forward(self) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """(text tokens, visual tokens): per insertion layer, [K, d_t] and [K, d_v]."""
        raise NotImplementedError

    def rep_projection(self) -> torch.Tensor:
        """The projection of the image tower's representation tokens, [d_v, d]."""
        raise NotImplementedError


LEARNER_REGISTRY = Registry("LEARNER")


def register_learner(cls: type) -> type:
    """Class decorator: register a :class:`RepresentationLearner` under its ``variant``."""
    if not (isinstance(cls, type) and issubclass(cls, RepresentationLearner)) or not cls.variant:
        raise TypeError(f"{cls!r} must be a RepresentationLearner subclass with a variant name")
    clash = set(cls.arch_fields) & set(_COMMON)
    if clash:
        raise TypeError(f"{cls.__name__} redeclares the common architecture field(s) {sorted(clash)}")
    return LEARNER_REGISTRY.register(cls, name=cls.variant)


def learner_class(variant: str) -> type:
    """The learner registered under ``variant``, or a ValueError naming the registered ones."""
    if variant not in LEARNER_REGISTRY:
        raise ValueError(f"unknown representation variant {variant!r}; use one of "
                         f"{tuple(LEARNER_REGISTRY.registered_names())}")
    return LEARNER_REGISTRY.get(variant)


@dataclass(frozen=True, init=False)
class RepArch:
    """What defines the shapes of a learner; saved with checkpoints so a model reloads as trained.

    The fields every learner has, plus ``options``: the learner's own ``arch_fields`` (read as
    attributes, e.g. ``arch.proj_lora_dim``).
    """

    variant: str  # a registered learner
    n_tokens: int  # K
    rep_layers: Tuple[int, ...]  # 1-based block numbers, sorted, unique
    rep_dim: int  # d_r
    visual_width: int  # d_v
    text_width: int  # d_t
    embed_dim: int  # d, CLIP's joint space
    options: Tuple[Tuple[str, int], ...]  # (field, value) of the learner's own fields, sorted

    def __init__(self, variant: str, n_tokens: int, rep_layers: Sequence[int], rep_dim: int, visual_width: int,
                 text_width: int, embed_dim: int, **options: int) -> None:
        learner = learner_class(variant)
        values = dict(variant=variant, n_tokens=n_tokens, rep_layers=tuple(int(x) for x in rep_layers),
                      rep_dim=rep_dim, visual_width=visual_width, text_width=text_width, embed_dim=embed_dim)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        unknown = sorted(set(options) - set(learner.arch_fields))
        if unknown:
            raise ValueError(f"unknown RepArch key(s) {unknown} for {variant}; known: "
                             f"{sorted(set(_COMMON) | set(learner.arch_fields))}")
        object.__setattr__(self, "options", tuple(sorted(options.items())))
        self._validate(learner)

    def __getattr__(self, name: str) -> int:
        # Only reached for names that are not fields: the learner's own ones.
        for key, value in object.__getattribute__(self, "options"):
            if key == name:
                return value
        raise AttributeError(f"{type(self).__name__} of {self.variant} has no field {name!r}")

    def key(self, name: str) -> str:
        """The config key a field comes from (errors name what the user sets), or the backbone's
        width it is read from."""
        keys = {**_CONFIG_KEYS, **learner_class(self.variant).arch_fields}
        if name in keys:
            return f"TRAINER.{self.variant}.{keys[name]}"
        return f"the CLIP backbone's {name.replace('_', ' ')}"

    def _validate(self, learner: type) -> None:
        layers = self.rep_layers
        key = self.key("rep_layers")
        if not layers:
            raise ValueError(f"{key} is empty; give the 1-based blocks that receive tokens, e.g. [6,7,8,9,10,11,12]")
        if list(layers) != sorted(set(layers)):
            raise ValueError(f"{key} {list(layers)} must be sorted and without repeats")
        if layers[0] < 1:
            raise ValueError(f"{key} {list(layers)}: block numbers are 1-based, {layers[0]} is invalid")
        own = dict(self.options)
        missing = [name for name in learner.arch_fields if name not in own]
        if missing:
            raise ValueError(f"{self.key(missing[0])} must be at least 1; the {self.variant} architecture lacks "
                             f"{missing[0]}")
        for name, value in [*((n, getattr(self, n)) for n in ("n_tokens", "rep_dim", *_WIDTHS)), *self.options]:
            if int(value) < 1:
                raise ValueError(f"{self.key(name)} must be at least 1, got {value}")

    def check_layers(self, n_layers: int) -> None:
        """Raise unless every insertion block exists in a tower of ``n_layers`` blocks."""
        if self.rep_layers[-1] > n_layers:
            raise ValueError(
                f"{self.key('rep_layers')} {list(self.rep_layers)} exceed the backbone's {n_layers} blocks; "
                f"use numbers in 1..{n_layers}"
            )

    def to_dict(self) -> Dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        d["rep_layers"] = list(self.rep_layers)
        d.update(self.options)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RepArch":
        d = dict(d)
        learner = learner_class(d.get("variant", ""))
        known = set(_COMMON) | set(learner.arch_fields) | {"variant"}
        # Checkpoints written before each learner declared its own fields record every variant's
        # fields, the ones a learner does not have as 0.
        d = {k: v for k, v in d.items() if k in known or v != 0}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown RepArch key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_clip(cls, clip_model: nn.Module, variant: str, n_tokens: int, rep_layers: Sequence[int], rep_dim: int,
                  **options: int) -> "RepArch":
        """The architecture for a given CLIP, its widths read from the model; layers validated.
        ``options`` the learner does not declare are dropped, so one call serves every variant."""
        own = learner_class(variant).arch_fields
        visual_width, text_width, embed_dim = clip_widths(clip_model)
        arch = cls(variant, n_tokens, tuple(rep_layers), rep_dim, visual_width, text_width, embed_dim,
                   **{k: v for k, v in options.items() if k in own})
        arch.check_layers(clip_depth(clip_model))
        return arch

    @classmethod
    def from_config(cls, clip_model: nn.Module, variant: str, node: Mapping[str, Any]) -> "RepArch":
        """The architecture ``TRAINER.<variant>`` (``node``) asks for on this CLIP."""
        keys = {**_CONFIG_KEYS, **learner_class(variant).arch_fields}
        return cls.from_clip(clip_model, variant, **{field: node[key] for field, key in keys.items()})


def model_options(variant: str, node: Mapping[str, Any]) -> Dict[str, Any]:
    """The :class:`~mmrl.model.mmrl.RepresentationCLIP` arguments of ``variant`` from ``TRAINER.<variant>``."""
    return {arg: node[key] for arg, key in learner_class(variant).model_keys.items()}


def _shared_rep(arch: RepArch) -> nn.Parameter:
    r = torch.empty(arch.n_tokens, arch.rep_dim)
    nn.init.normal_(r, std=0.02)
    return nn.Parameter(r)


def _copies_of_one_linear(d_in: int, d_out: int, n: int) -> nn.ModuleList:
    # Kept as the reference implementation does: one Linear is initialised and deep-copied, so
    # every insertion layer's map starts from the same weights (they then train independently).
    base = nn.Linear(d_in, d_out)
    return nn.ModuleList([copy.deepcopy(base) for _ in range(n)])


@register_learner
class MMRLLearner(RepresentationLearner):
    """MMRL: R, one independent Linear per insertion layer and modality, and P_v^r (d_v x d)."""

    variant = "MMRL"
    splice = "replace"
    reference_marker = "representation_learner.compound_rep_tokens_r2vproj.0.weight"
    _REF_V = "representation_learner.compound_rep_tokens_r2vproj"
    _REF_T = "representation_learner.compound_rep_tokens_r2tproj"

    def __init__(self, arch: RepArch, proj: Optional[torch.Tensor] = None) -> None:
        super().__init__(arch)
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

    @classmethod
    def reference_table(cls, n_layers: int) -> List[Tuple[str, str]]:
        table = [(REFERENCE_REP, "rep_tokens")]
        for i in range(n_layers):
            for p in ("weight", "bias"):
                table.append((f"{cls._REF_V}.{i}.{p}", f"to_visual.{i}.{p}"))
                table.append((f"{cls._REF_T}.{i}.{p}", f"to_text.{i}.{p}"))
        return table + [("image_encoder.proj_rep", "proj_rep")]

    @classmethod
    def reference_layer_key(cls, i: int) -> str:
        return f"{cls._REF_V}.{i}.weight"

    @classmethod
    def arch_of_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> Dict[str, int]:
        return dict(visual_width=sd["to_visual.0.weight"].shape[0], text_width=sd["to_text.0.weight"].shape[0],
                    embed_dim=sd["proj_rep"].shape[1])


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


@register_learner
class MMRLppLearner(RepresentationLearner):
    """MMRL++: R, SRRA maps per modality, and a low-rank update A @ B of CLIP's frozen proj."""

    variant = "MMRLpp"
    arch_fields = {"proj_lora_dim": "PROJ_LORA_DIM", "res_lora_dim": "RES_LORA_DIM"}
    model_keys = {**RepresentationLearner.model_keys, "beta": "BETA"}
    # PRC: after the first insertion layer, tokens are blended with the previous outputs (beta).
    splice = "blend"
    reference_marker = "representation_learner.srra_r2vproj.weight"
    _REF = (("representation_learner.srra_r2vproj", "to_visual"), ("representation_learner.srra_r2tproj", "to_text"))

    def __init__(self, arch: RepArch, proj: torch.Tensor) -> None:
        super().__init__(arch)
        if tuple(proj.shape) != (arch.visual_width, arch.embed_dim):
            raise ValueError(
                f"CLIP's visual proj has shape {list(proj.shape)}, the architecture expects "
                f"[{arch.visual_width}, {arch.embed_dim}]"
            )
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

    @classmethod
    def reference_table(cls, n_layers: int) -> List[Tuple[str, str]]:
        table = [(REFERENCE_REP, "rep_tokens")]
        for ref, ours in cls._REF:
            table.append((f"{ref}.weight", f"{ours}.weight"))
            for i in range(n_layers):
                for p in ("A", "B", "bias"):
                    table.append((f"{ref}.srra.{i}.{p}", f"{ours}.res.{i}.{p}"))
        return table + [("image_encoder.A", "proj_A"), ("image_encoder.B", "proj_B")]

    @classmethod
    def reference_layer_key(cls, i: int) -> str:
        return f"{cls._REF[0][0]}.srra.{i}.A"

    @classmethod
    def arch_of_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> Dict[str, int]:
        return dict(visual_width=sd["to_visual.weight"].shape[0], text_width=sd["to_text.weight"].shape[0],
                    embed_dim=sd["proj_B"].shape[1], proj_lora_dim=sd["proj_A"].shape[1],
                    res_lora_dim=sd["to_visual.res.0.A"].shape[1])


def check_widths(arch: RepArch, clip_model: nn.Module, backbone: str = "") -> None:
    """Raise unless ``arch`` (e.g. a checkpoint's) fits this CLIP: its widths and its layer range."""
    widths = clip_widths(clip_model)
    if widths != (arch.visual_width, arch.text_width, arch.embed_dim):
        name = f" {backbone!r}" if backbone else ""
        raise ValueError(
            f"the architecture's widths (visual {arch.visual_width}, text {arch.text_width}, embed {arch.embed_dim}) "
            f"do not match the CLIP backbone{name}'s (visual {widths[0]}, text {widths[1]}, embed {widths[2]}); "
            "the checkpoint was trained with another backbone: use that one (MODEL.BACKBONE.NAME / PATH)"
        )
    arch.check_layers(clip_depth(clip_model))


def build_learner(arch: RepArch, clip_model: nn.Module) -> RepresentationLearner:
    """The learner of ``arch.variant`` for this CLIP (widths and layer range checked against it)."""
    check_widths(arch, clip_model)
    return learner_class(arch.variant)(arch, clip_model.visual.proj)
