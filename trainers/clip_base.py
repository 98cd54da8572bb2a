"""What every trainer on a frozen CLIP shares: loading CLIP once, the class prompts, batches."""
from typing import List, Tuple

import torch

from mmrl.dassl.engine import TrainerX
from mmrl.model.clip_loader import MINI_BACKBONE, load_clip
from mmrl.templates import class_prompts, template_for


class CLIPTrainer(TrainerX):
    """Base of the CLIP trainers (not registered itself)."""

    def load_clip(self):
        cfg = self.cfg
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
