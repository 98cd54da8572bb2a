"""PromptSRC: prompting with self-regulating constraints (Khattak et al., ICCV 2023), on the stock CLIP.

The published keys (TRAINER.PROMPTSRC.*) and checkpoint folder (VLPromptLearner); the model and loss
are ``mmrl.model.promptsrc``. Gaussian prompt aggregation (GPA): after every epoch the prompts are
added to a running sum with that epoch's weight (``gpa_weights``); after the last epoch the sum
replaces the prompts, so the final checkpoint and test hold the aggregated prompts, as published. The
running sum is saved in each checkpoint ("gpa"), so a resumed run aggregates as an uninterrupted one.
"""
from typing import Any, Dict, Optional

import torch

from mmrl.dassl.engine import TRAINER_REGISTRY
from mmrl.dassl.utils import distributed as dist
from mmrl.model.promptsrc import PromptSRCCLIP, gpa_weights

from .prompt_base import PromptTrainer


@TRAINER_REGISTRY.register()
class PromptSRC(PromptTrainer):
    table_rank = 4
    node_name = "PROMPTSRC"
    # The published few-shot GPA values differ by dataset (configs/trainers/PromptSRC/dataset_overrides.yaml).
    per_dataset_values = True
    model_name = "VLPromptLearner"

    @classmethod
    def method_defaults(cls, node) -> None:
        node.N_CTX_VISION = 4
        node.N_CTX_TEXT = 4
        node.CTX_INIT = "a photo of a"
        node.PREC = "fp16"  # fp16 / fp32 / amp / bf16 (ours)
        node.PROMPT_DEPTH_VISION = 9
        node.PROMPT_DEPTH_TEXT = 9
        node.TEXT_LOSS_WEIGHT = 25
        node.IMAGE_LOSS_WEIGHT = 10
        node.GPA_MEAN = 15
        node.GPA_STD = 1

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        node = cfg.TRAINER.PROMPTSRC
        gpa_weights(cfg.OPTIM.MAX_EPOCH, node.GPA_MEAN, node.GPA_STD)

    def build_prompted_model(self, clip_model, classnames):
        node = self.method_cfg
        model = PromptSRCCLIP(clip_model, classnames, node.N_CTX_TEXT, node.N_CTX_VISION, node.CTX_INIT,
                              node.PROMPT_DEPTH_TEXT, node.PROMPT_DEPTH_VISION, node.TEXT_LOSS_WEIGHT,
                              node.IMAGE_LOSS_WEIGHT, recompute=self.recompute)
        self.gpa = gpa_weights(self.cfg.OPTIM.MAX_EPOCH, node.GPA_MEAN, node.GPA_STD)
        self.gpa_sum: Optional[Dict[str, torch.Tensor]] = None
        print(f'PromptSRC: text context "{model.trainable.prefix}" ({node.N_CTX_TEXT} tokens, depth '
              f"{node.PROMPT_DEPTH_TEXT}), {node.N_CTX_VISION} vision tokens (depth {node.PROMPT_DEPTH_VISION}); "
              f"GPA over {len(self.gpa)} epochs (mean {node.GPA_MEAN}, std {node.GPA_STD})")
        return model

    def train_loss(self, image, label, batch_share):
        class_share = 1.0 / dist.world_size() if dist.is_distributed() else 1.0
        terms, _ = self.model.forward_train(image, label, batch_share, class_share)
        return terms["loss"]

    # ---- Gaussian prompt aggregation ------------------------------------------------------------
    def aggregate(self, epoch: int) -> None:
        """Add the prompts after ``epoch`` (0-based) with its weight; after the last, load the sum."""
        weight = self.gpa[epoch]
        state = self.model.trainable.state_dict()
        if self.gpa_sum is None:
            self.gpa_sum = {k: v.detach() * weight for k, v in state.items()}
        else:
            self.gpa_sum = {k: self.gpa_sum[k] + v.detach() * weight for k, v in state.items()}
        if epoch + 1 == len(self.gpa):
            print("Using GPA model for final inference...")
            self.model.trainable.load_state_dict(self.gpa_sum)

    def after_epoch(self) -> None:
        self.aggregate(self.epoch)
        super().after_epoch()

    def checkpoint_extra(self, name) -> Dict[str, Any]:
        extra = super().checkpoint_extra(name)
        if self.gpa_sum is not None:
            extra["gpa"] = {k: v.clone() for k, v in self.gpa_sum.items()}
        return extra

    def check_checkpoint(self, checkpoint: Dict[str, Any], path: str, resuming: bool) -> None:
        super().check_checkpoint(checkpoint, path, resuming)
        if resuming:
            saved = checkpoint.get("gpa")
            self.gpa_sum = None if saved is None else {k: v.to(self.device) for k, v in saved.items()}
