"""Frozen CLIP with MMRL / MMRL++ representation tokens: features, logits and the training loss."""
from typing import Dict, List, Mapping, Optional, Protocol, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmrl.model.clip_loader import tokenize
from mmrl.model.loss import mmrl_loss
from mmrl.model.representation import RepArch, build_learner
from mmrl.model.towers import ImageTower, TextTower

# Logits use a fixed scale, not CLIP's learned logit_scale, as in the reference.
LOGIT_SCALE = 100.0


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


class RepresentationCLIP(nn.Module):
    """One frozen CLIP shared by the zero-shot regulariser and the representation branch.

    ``self.learner`` holds every trainable tensor; the CLIP (``self.clip_model``) has none.
    Text blocks below the first insertion layer J see only the fixed prompts, so their output
    and the zero-shot text features are computed once per :meth:`set_prompts`.

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
        # MMRL++'s PRC blend weight; MMRL always replaces. Mutable so evaluation can set a
        # per-target value.
        self.beta = float(beta)
        # Trade time for memory: the blocks that carry tokens run again in backward.
        self.recompute = bool(recompute)
        self.sharding = sharding
        self.class_rows = slice(None)  # this process's classes (all without a sharding)
        self.image_tower = ImageTower(clip_model.visual)
        self.text_tower = TextTower(clip_model)
        self.start = arch.rep_layers[0] - 1  # J, 0-based
        self.layer_index = [layer - 1 for layer in arch.rep_layers]
        self.register_buffer("tokens", torch.zeros(0, 77, dtype=torch.long), persistent=False)  # all classes
        # The rest hold this process's classes, C_r of C (all C without a sharding).
        self.register_buffer("eot_index", torch.zeros(0, dtype=torch.long), persistent=False)  # [C_r]
        self.register_buffer("text_lower", torch.zeros(0), persistent=False)  # [L, C_r, d_t]
        self.register_buffer("w_zs", torch.zeros(0), persistent=False)  # [C_r, d], L2-normalised
        self.set_prompts(prompts)

    @property
    def _blend(self) -> Optional[float]:
        return self.beta if self.arch.variant == "MMRLpp" else None

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
        # Embedded for all classes and then sliced, so every shard has the one-process length.
        lower = self.text_tower.run(self.text_tower.embed(tokens)[:, rows], 0, self.start)
        full = self.text_tower.run(lower, self.start, self.text_tower.n_layers)
        eot = tokens[rows].argmax(dim=-1)
        self.tokens = tokens
        self.class_rows = rows
        self.eot_index = eot
        self.text_lower = lower
        self.w_zs = F.normalize(self.text_tower.feature(full, eot), dim=-1)

    def _text_features(self, text_tokens: List[torch.Tensor]) -> torch.Tensor:
        """This process's classes' learned text features, [C_r, d], L2-normalised."""
        inserts = dict(zip(self.layer_index, text_tokens))
        x = self.text_tower.run(self.text_lower, self.start, self.text_tower.n_layers, inserts, self._blend,
                                self.recompute)
        f = self.text_tower.feature(x, self.eot_index, shift=self.arch.n_tokens)
        return F.normalize(f, dim=-1)

    def _all_classes(self, mine: torch.Tensor) -> torch.Tensor:
        """[C_r, d] of this process -> [C, d] of all classes (the same tensor without a sharding)."""
        return mine if self.sharding is None else self.sharding.gather(mine, self.n_classes)

    @property
    def class_share(self) -> float:
        """C_r / C: this process's fraction of the classes."""
        return self.w_zs.shape[0] / self.n_classes

    def text_features(self) -> torch.Tensor:
        """The learned text features of all classes, [C, d], L2-normalised (grad flows)."""
        text_tokens, _ = self.learner()
        return self._all_classes(self._text_features(text_tokens))

    def _image_features(
        self, images: torch.Tensor, visual_tokens: List[torch.Tensor], with_zero_shot: bool
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        tower = self.image_tower
        x = tower.run(tower.embed(images), 0, self.start)  # shared by both branches
        f_zs = None
        if with_zero_shot:
            with torch.no_grad():
                f_zs = F.normalize(tower.cls_feature(tower.run(x, self.start, tower.n_layers)), dim=-1)
        inserts = dict(zip(self.layer_index, visual_tokens))
        x = tower.run(x, self.start, tower.n_layers, inserts, self._blend, self.recompute)
        f_c = F.normalize(tower.cls_feature(x), dim=-1)
        f_r = F.normalize(tower.token_feature(x, self.arch.n_tokens, self.learner.rep_projection()), dim=-1)
        return f_c, f_r, f_zs

    def image_features(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(f_c, f_r), each [B, d] and L2-normalised: class-token and representation-token features."""
        _, visual_tokens = self.learner()
        f_c, f_r, _ = self._image_features(images, visual_tokens, with_zero_shot=False)
        return f_c, f_r

    def _logits(self, f_c: torch.Tensor, f_r: torch.Tensor, w: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = w.to(f_c.dtype)
        logits_c = LOGIT_SCALE * f_c @ w.t()
        logits_r = LOGIT_SCALE * f_r @ w.t()
        return logits_c, logits_r, self.alpha * logits_c + (1.0 - self.alpha) * logits_r

    def logits(self, images: torch.Tensor, text_features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits_c, logits_r, logits_fused), each [B, C], against precomputed text features."""
        f_c, f_r = self.image_features(images)
        return self._logits(f_c, f_r, text_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Fused logits [B, C] (text features recomputed)."""
        return self.logits(images, self.text_features())[2]

    def forward_train(
        self, images: torch.Tensor, labels: torch.Tensor, reg_weight: float, batch_share: float = 1.0
    ) -> Dict[str, torch.Tensor]:
        """One training forward: "loss", "logits_c", "logits_r", "logits_fused".

        ``batch_share`` is B_r / B when ``images`` are this process's B_r of a global batch of B;
        with it and a sharding, "loss" is this process's share of the global loss (the shares of
        all processes sum to the one-process loss).
        """
        text_tokens, visual_tokens = self.learner()
        w_mine = self._text_features(text_tokens)
        w = self._all_classes(w_mine)
        f_c, f_r, f_zs = self._image_features(images, visual_tokens, with_zero_shot=True)
        logits_c, logits_r, logits_fused = self._logits(f_c, f_r, w)
        loss = mmrl_loss(logits_c, logits_r, f_c, f_zs, w_mine, self.w_zs, labels, self.alpha, reg_weight,
                         batch_share=batch_share, class_share=self.class_share)
        return {"loss": loss, "logits_c": logits_c, "logits_r": logits_r, "logits_fused": logits_fused}

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
