"""Frozen CLIP with MMRL / MMRL++ representation tokens: features, logits and the training loss."""
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmrl.model.clip_loader import tokenize
from mmrl.model.loss import mmrl_loss
from mmrl.model.representation import RepArch, build_learner
from mmrl.model.towers import ImageTower, TextTower

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


class RepresentationCLIP(nn.Module):
    """One frozen CLIP shared by the zero-shot regulariser and the representation branch.

    ``self.learner`` holds every trainable tensor; the CLIP (``self.clip_model``) has none.
    Text blocks below the first insertion layer J see only the fixed prompts, so their output
    and the zero-shot text features are computed once per :meth:`set_prompts`.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        prompts: List[str],
        arch: RepArch,
        alpha: float,
        beta: float = 1.0,
        recompute: bool = False,
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
        self.image_tower = ImageTower(clip_model.visual)
        self.text_tower = TextTower(clip_model)
        self.start = arch.rep_layers[0] - 1  # J, 0-based
        self.layer_index = [layer - 1 for layer in arch.rep_layers]
        self.register_buffer("tokens", torch.zeros(0, 77, dtype=torch.long), persistent=False)
        self.register_buffer("eot_index", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("text_lower", torch.zeros(0), persistent=False)  # [77, C, d_t]
        self.register_buffer("w_zs", torch.zeros(0), persistent=False)  # [C, d], L2-normalised
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
        lower = self.text_tower.run(self.text_tower.embed(tokens), 0, self.start)
        full = self.text_tower.run(lower, self.start, self.text_tower.n_layers)
        eot = tokens.argmax(dim=-1)
        self.tokens = tokens
        self.eot_index = eot
        self.text_lower = lower
        self.w_zs = F.normalize(self.text_tower.feature(full, eot), dim=-1)

    def _text_features(self, text_tokens: List[torch.Tensor]) -> torch.Tensor:
        inserts = dict(zip(self.layer_index, text_tokens))
        x = self.text_tower.run(self.text_lower, self.start, self.text_tower.n_layers, inserts, self._blend,
                                self.recompute)
        f = self.text_tower.feature(x, self.eot_index, shift=self.arch.n_tokens)
        return F.normalize(f, dim=-1)

    def text_features(self) -> torch.Tensor:
        """The learned text features of all classes, [C, d], L2-normalised (grad flows)."""
        text_tokens, _ = self.learner()
        return self._text_features(text_tokens)

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

    def inference_logits(self, images: torch.Tensor, text_features: torch.Tensor, scored: str) -> torch.Tensor:
        """The ``scored`` logits (``FUSED`` or ``CLASS_TOKEN``) [B, C] of an evaluation."""
        if scored not in SCORED_LOGITS:
            raise ValueError(f"scored logits must be one of {SCORED_LOGITS}, got {scored!r}")
        logits_c, _, logits_fused = self.logits(images, text_features)
        return logits_fused if scored == FUSED else logits_c

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Fused logits [B, C] (text features recomputed)."""
        return self.logits(images, self.text_features())[2]

    def forward_train(self, images: torch.Tensor, labels: torch.Tensor, reg_weight: float) -> Dict[str, torch.Tensor]:
        """One training forward: "loss", "logits_c", "logits_r", "logits_fused"."""
        text_tokens, visual_tokens = self.learner()
        w = self._text_features(text_tokens)
        f_c, f_r, f_zs = self._image_features(images, visual_tokens, with_zero_shot=True)
        logits_c, logits_r, logits_fused = self._logits(f_c, f_r, w)
        loss = mmrl_loss(logits_c, logits_r, f_c, f_zs, w, self.w_zs, labels, self.alpha, reg_weight)
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
