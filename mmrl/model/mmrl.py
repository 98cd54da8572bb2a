"""Frozen CLIP with MMRL / MMRL++ representation tokens: features, logits and the training loss."""
from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Optional, Protocol, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmrl.model.clip_loader import tokenize
from mmrl.model.loss import mmrl_loss
from mmrl.model.representation import RepArch, build_learner
from mmrl.model.towers import ClassGroups, ImageTower, TextTower

# Logits use a fixed scale, not CLIP's learned logit_scale, as in the reference.
LOGIT_SCALE = 100.0
# The logits a prediction scores: class + representation features, or the class token alone.
FUSED, CLASS_TOKEN = "fused", "class"
SCORED_LOGITS = (FUSED, CLASS_TOKEN)


def decoupled_inference(trained_classes: bool) -> str:
    """Decoupled inference of MMRL: which logits to score for a set of classes.

    The representation branch is learned on the training classes, so it is used where the classes
    scored are those classes (``FUSED``) and dropped for any other class set (``CLASS_TOKEN``).
    """
    return FUSED if trained_classes else CLASS_TOKEN


@dataclass(frozen=True)
class RepresentationOutput:
    """One forward of :class:`RepresentationCLIP`: both branches' logits, their fusion, and the
    features they come from (all L2-normalised); ``loss`` only from :meth:`forward_train`."""

    logits_c: torch.Tensor  # [B, C], class token vs text features
    logits_r: torch.Tensor  # [B, C], representation tokens vs text features
    logits_fused: torch.Tensor  # [B, C], alpha * logits_c + (1 - alpha) * logits_r
    image_features_c: torch.Tensor  # [B, d], f_c
    image_features_r: torch.Tensor  # [B, d], f_r
    text_features: torch.Tensor  # [C, d], w
    loss: Optional[torch.Tensor] = None  # scalar

    def scored(self, which: str) -> torch.Tensor:
        """The logits of decoupled inference: "fused" or "class" (class token only)."""
        if which == "fused":
            return self.logits_fused
        if which == "class":
            return self.logits_c
        raise ValueError(f"scored logits must be 'fused' or 'class', got {which!r}")


class ClassSharding(Protocol):
    """Which classes this process runs through the text tower, and how the others' rows come back.

    A data-parallel run splits the class prompts over its processes (the text tower's cost and
    activations fall by the number of processes); ``mmrl.dassl.utils.distributed.RowSharding``
    is the engine's implementation. Without one, a process runs every class.
    """

    def rows(self, n: int) -> slice:
        """This process's classes among ``n``, a contiguous slice."""

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """[n, d] from every process's rows [rows(n), d], differentiable (gradients flow back to the
        process that owns each row)."""


def _wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in fp32 when it is half precision (fp16 / bf16); fp32 and fp64 are kept as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class RepresentationCLIP(nn.Module):
    """One frozen CLIP shared by the zero-shot regulariser and the representation branch.

    ``self.learner`` holds every trainable tensor; the CLIP (``self.clip_model``) has none.
    Text blocks below the first insertion layer J see only the fixed prompts, so their output
    and the zero-shot text features are computed once per :meth:`set_prompts`. From J on, the
    start token and the representation tokens are the same for every class and computed once per
    call; each class runs only its own positions, grouped by prompt length
    (:meth:`TextTower.run_shared_prefix`).

    With a ``sharding``, this process keeps the frozen text states and zero-shot features of its
    own classes only and runs only those through the text tower; the learned text features of
    all classes are gathered from the other processes (with autograd).
    """

    def __init__(
        self,
        clip_model: nn.Module,
        prompts: List[str],
        arch: RepArch,
        alpha: float,
        beta: float = 1.0,
        recompute: bool = False,
        sharding: Optional[ClassSharding] = None,
    ) -> None:
        super().__init__()
        self.clip_model = clip_model
        self.clip_model.requires_grad_(False)
        self.arch = arch
        self.learner = build_learner(arch, clip_model)
        self.alpha = float(alpha)
        # MMRL++'s PRC blend weight; used only by a learner whose splice is "blend".
        self.beta = float(beta)
        # Trade time for memory: the blocks that carry tokens run again in backward.
        self.recompute = bool(recompute)
        self.sharding = sharding
        self.image_tower = ImageTower(clip_model.visual)
        self.text_tower = TextTower(clip_model)
        self.start = arch.rep_layers[0] - 1  # J, 0-based
        self.layer_index = [layer - 1 for layer in arch.rep_layers]
        self.register_buffer("tokens", torch.zeros(0, 77, dtype=torch.long), persistent=False)  # all classes
        # The rest hold this process's classes, C_r of C (all C without a sharding).
        self.register_buffer("eot_index", torch.zeros(0, dtype=torch.long), persistent=False)  # [C_r]
        self.register_buffer("text_lower", torch.zeros(0), persistent=False)  # [L, C_r, d_t], L <= 77 (trimmed)
        self.register_buffer("w_zs", torch.zeros(0), persistent=False)  # [C_r, d], L2-normalised
        # Class groups derived from text_lower, per class selection; rebuilt on set_prompts and
        # whenever the buffers move (device or dtype).
        self._class_groups: Dict[Optional[Tuple[int, ...]], ClassGroups] = {}
        self.set_prompts(prompts)

    def _apply(self, fn, *args, **kwargs):
        self._class_groups = {}
        return super()._apply(fn, *args, **kwargs)

    @property
    def _blend(self) -> Optional[float]:
        # Tokens after the first insertion layer replace the previous outputs, or are blended
        # with them (weight beta), as the learner's splice says.
        return self.beta if self.learner.splice == "blend" else None

    @property
    def n_classes(self) -> int:
        return self.tokens.shape[0]

    @torch.no_grad()
    def set_prompts(self, prompts: List[str]) -> None:
        """Tokenise the class prompts and recompute the frozen text caches for them."""
        if not prompts:
            raise ValueError("RepresentationCLIP needs at least one class prompt")
        device = self.clip_model.text_projection.device
        tokens = tokenize(prompts).to(device)
        rows = self.sharding.rows(len(prompts)) if self.sharding is not None else slice(None)
        # Embedded (and trimmed) for all classes, then sliced: every shard has the one-process length.
        lower = self.text_tower.run(self.text_tower.embed(tokens)[:, rows], 0, self.start)
        full = self.text_tower.run(lower, self.start, self.text_tower.n_layers)
        eot = tokens[rows].argmax(dim=-1)
        self.tokens = tokens
        self.eot_index = eot
        self.text_lower = lower
        self.w_zs = F.normalize(self.text_tower.feature(full, eot), dim=-1)
        self._class_groups = {}

    def class_groups(self, classes: Optional[torch.Tensor] = None) -> ClassGroups:
        """The prompts of ``classes`` (indices into this process's classes; all of them when None)
        grouped for the text tower. Cached."""
        key = None if classes is None else tuple(int(c) for c in classes.tolist())
        groups = self._class_groups.get(key)
        if groups is None:
            groups = self.text_tower.group_classes(self.text_lower, self.eot_index, classes)
            self._class_groups[key] = groups
        return groups

    def _text_features(self, text_tokens: List[torch.Tensor], classes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Learned text features [N, d] of this process's classes ``classes`` (all C_r by default)."""
        inserts = dict(zip(self.layer_index, text_tokens))
        f = self.text_tower.run_shared_prefix(self.class_groups(classes), self.start, inserts, self._blend,
                                              self.recompute)
        return F.normalize(_wide(f), dim=-1)

    def text_features(self, classes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The learned text features [N, d], L2-normalised (grad flows), of the classes ``classes``
        (a 1-D index tensor, in its order; all C classes by default). The shared prefix is computed
        once whatever the selection, so a subset costs only its own prompts. With a sharding, every
        process runs its own classes and the selection is taken from the gathered whole."""
        text_tokens, _ = self.learner()
        if self.sharding is None:
            return self._text_features(text_tokens, classes)
        everything = self._all_classes(self._text_features(text_tokens))
        return everything if classes is None else everything[classes]

    def _all_classes(self, mine: torch.Tensor) -> torch.Tensor:
        """[C_r, d] of this process -> [C, d] of all classes (the same tensor without a sharding)."""
        return mine if self.sharding is None else self.sharding.gather(mine, self.n_classes)

    @property
    def class_share(self) -> float:
        """C_r / C: this process's fraction of the classes."""
        return self.w_zs.shape[0] / self.n_classes

    def whole_sequence_text_features(self) -> torch.Tensor:
        """:meth:`text_features` computed without the shared prefix and the length groups: every class
        runs BOS + K tokens + its prompt, padded to the longest. The same features up to float rounding;
        kept as the baseline that the saving is tested and benchmarked against."""
        text_tokens, _ = self.learner()
        inserts = dict(zip(self.layer_index, text_tokens))
        x = self.text_tower.run(self.text_lower, self.start, self.text_tower.n_layers, inserts, self._blend,
                                self.recompute)
        f = self.text_tower.feature(x, self.eot_index, shift=self.arch.n_tokens)
        return self._all_classes(F.normalize(_wide(f), dim=-1))

    def _image_lower(self, images: torch.Tensor) -> torch.Tensor:
        """Blocks below the first insertion layer, shared by both image branches: [L, B, Dv]."""
        tower = self.image_tower
        return tower.run(tower.embed(images), 0, self.start)

    @torch.no_grad()
    def _zero_shot_image(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen CLIP's class-token feature from the shared lower states x, [B, d], L2-normalised."""
        tower = self.image_tower
        return F.normalize(_wide(tower.cls_feature(tower.run(x, self.start, tower.n_layers))), dim=-1)

    def _image_upper(self, x: torch.Tensor, visual_tokens: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(f_c, f_r) from the shared lower states x, the tokens spliced in from the first insertion layer."""
        tower = self.image_tower
        inserts = dict(zip(self.layer_index, visual_tokens))
        x = tower.run(x, self.start, tower.n_layers, inserts, self._blend, self.recompute)
        f_c = F.normalize(_wide(tower.cls_feature(x)), dim=-1)
        f_r = F.normalize(_wide(tower.token_feature(x, self.arch.n_tokens, self.learner.rep_projection())), dim=-1)
        return f_c, f_r

    def _image_features(
        self, images: torch.Tensor, visual_tokens: List[torch.Tensor], with_zero_shot: bool
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        x = self._image_lower(images)
        f_zs = self._zero_shot_image(x) if with_zero_shot else None
        f_c, f_r = self._image_upper(x, visual_tokens)
        return f_c, f_r, f_zs

    def image_features(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(f_c, f_r), each [B, d] and L2-normalised: class-token and representation-token features."""
        _, visual_tokens = self.learner()
        f_c, f_r, _ = self._image_features(images, visual_tokens, with_zero_shot=False)
        return f_c, f_r

    def _output(self, f_c: torch.Tensor, f_r: torch.Tensor, w: torch.Tensor) -> RepresentationOutput:
        # Features, logits and the loss are fp32 in every precision: they cost [B, C] x d, and near
        # 100 half-precision numbers are 0.06 (fp16) or 0.5 (bf16) apart, which flips close
        # predictions. Autocast is off here, or it would run the matmuls in half precision again.
        with torch.autocast(f_c.device.type, enabled=False):
            f_c, f_r, w = _wide(f_c), _wide(f_r), _wide(w).to(_wide(f_c).dtype)
            logits_c = LOGIT_SCALE * f_c @ w.t()
            logits_r = LOGIT_SCALE * f_r @ w.t()
        logits_fused = self.alpha * logits_c + (1.0 - self.alpha) * logits_r
        return RepresentationOutput(logits_c, logits_r, logits_fused, f_c, f_r, w)

    def logits(self, images: torch.Tensor, text_features: torch.Tensor) -> RepresentationOutput:
        """Logits and features of ``images`` against precomputed text features [C, d]."""
        f_c, f_r = self.image_features(images)
        return self._output(f_c, f_r, text_features)

    def inference_logits(self, images: torch.Tensor, text_features: torch.Tensor, scored: str) -> torch.Tensor:
        """The ``scored`` logits (``FUSED`` or ``CLASS_TOKEN``) [B, C] of an evaluation."""
        return self.logits(images, text_features).scored(scored)

    def forward_train(
        self, images: torch.Tensor, labels: torch.Tensor, reg_weight: float, batch_share: float = 1.0
    ) -> RepresentationOutput:
        """One training forward: the logits and features, and the loss.

        ``batch_share`` is B_r / B when ``images`` are this process's B_r of a global batch of B;
        with it and a sharding, the loss is this process's share of the global loss (the shares of
        all processes sum to the one-process loss).
        """
        text_tokens, visual_tokens = self.learner()
        w_mine = self._text_features(text_tokens)
        f_c, f_r, f_zs = self._image_features(images, visual_tokens, with_zero_shot=True)
        return self._with_loss(f_c, f_r, f_zs, w_mine, labels, reg_weight, batch_share)

    def _with_loss(self, f_c: torch.Tensor, f_r: torch.Tensor, f_zs: torch.Tensor, w_mine: torch.Tensor,
                   labels: torch.Tensor, reg_weight: float, batch_share: float) -> RepresentationOutput:
        """Logits of the features and the training loss (``mmrl_loss``); w_mine: this process's classes."""
        out = self._output(f_c, f_r, self._all_classes(w_mine))
        loss = mmrl_loss(out.logits_c, out.logits_r, f_c, f_zs, w_mine, self.w_zs, labels, self.alpha, reg_weight,
                         batch_share=batch_share, class_share=self.class_share)
        return replace(out, loss=loss)

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Exactly the learner's tensors (what a checkpoint holds)."""
        return self.learner.state_dict()

    def load_trainable_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Strict load of :meth:`trainable_state_dict`-shaped tensors, with a clear mismatch error."""
        own = self.learner.state_dict()
        hint = "the checkpoint was trained with another architecture or backbone"
        for key, value in own.items():
            if key not in state_dict:
                raise ValueError(f"checkpoint lacks key {key!r} (expected shape {list(value.shape)}); {hint}")
            if tuple(state_dict[key].shape) != tuple(value.shape):
                raise ValueError(
                    f"checkpoint key {key!r} has shape {list(state_dict[key].shape)}, "
                    f"the model expects {list(value.shape)}; {hint}"
                )
        extra = [k for k in state_dict if k not in own]
        if extra:
            raise ValueError(f"checkpoint has unexpected key {extra[0]!r}; {hint}")
        self.learner.load_state_dict(dict(state_dict), strict=True)
