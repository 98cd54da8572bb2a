"""What every trainer on a frozen CLIP shares: loading CLIP once, the class prompts, batches."""
from typing import Callable, List, Tuple

import torch

from mmrl.dassl.engine import TrainerX
from mmrl.dassl.utils import distributed as dist
from mmrl.model.clip_loader import MINI_BACKBONE, load_clip
from mmrl.templates import class_prompts, template_for


# Images per forward pass at evaluation. Test batches are large (250 in the method configs) and
# each image's logits are independent of the others', so a batch runs in chunks: the same
# predictions, with the activation peak of 32 images instead of 250 (~0.5 GB less at ViT-B/16).
EVAL_CHUNK = 32


class CLIPTrainer(TrainerX):
    """Base of the CLIP trainers (not registered itself)."""

    @classmethod
    def add_config(cls, cfg) -> None:
        super().add_config(cfg)
        # A local CLIP weights file; empty means the named model from CLIP's cache.
        cfg.MODEL.BACKBONE.PATH = ""

    @staticmethod
    def in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """``fn`` over ``images`` [B, ...] in chunks of EVAL_CHUNK, outputs concatenated on dim 0."""
        return torch.cat([fn(chunk) for chunk in images.split(EVAL_CHUNK)])

    def load_clip(self):
        cfg = self.cfg
        # Rank 0 downloads or writes the weights file first; the others then read it.
        with dist.main_process_first():
            clip_model = load_clip(
                cfg.MODEL.BACKBONE.NAME,
                cfg.MODEL.BACKBONE.PATH,
                device=self.device,
                fp16=self.precision == "fp16",
            )
        resolution = clip_model.visual.input_resolution
        if tuple(cfg.INPUT.SIZE) != (resolution, resolution):
            raise ValueError(
                f"INPUT.SIZE is {tuple(cfg.INPUT.SIZE)} but the CLIP backbone {cfg.MODEL.BACKBONE.NAME!r} "
                f"takes {resolution}x{resolution} images: set INPUT.SIZE ({resolution}, {resolution})"
            )
        return clip_model

    @property
    def prompt_template(self) -> str:
        # A dataset may carry its own template (the generic folder dataset does); the rest use the table.
        return getattr(self.dm.dataset, "template", None) or template_for(self.cfg.DATASET.NAME)

    def class_prompts(self) -> List[str]:
        return class_prompts(self.prompt_template, self.dm.dataset.classnames)

    def parse_batch_train(self, batch) -> Tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def test(self, split=None):
        result = super().test(split)
        if self.cfg.MODEL.BACKBONE.NAME == MINI_BACKBONE:
            print(f"Note: the {MINI_BACKBONE} CLIP is randomly initialised; "
                  "these accuracies say nothing about real CLIP.")
        return result
