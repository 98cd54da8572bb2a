"""MaPLe: multi-modal prompt learning (Khattak et al., CVPR 2023), on the stock CLIP.

The published keys (TRAINER.MAPLE.N_CTX, CTX_INIT, PREC, PROMPT_DEPTH) and checkpoint folder
(MultiModalPromptLearner); the model is ``mmrl.model.maple``.
"""
from mmrl.dassl.engine import TRAINER_REGISTRY
from mmrl.model.maple import MaPLeCLIP

from .prompt_base import PromptTrainer


@TRAINER_REGISTRY.register()
class MaPLe(PromptTrainer):
    table_rank = 3
    node_name = "MAPLE"
    model_name = "MultiModalPromptLearner"

    @classmethod
    def method_defaults(cls, node) -> None:
        node.N_CTX = 2
        node.CTX_INIT = "a photo of a"
        node.PREC = "fp16"  # fp16 / fp32 / amp / bf16 (ours)
        node.PROMPT_DEPTH = 9  # J: prompts at the input and at blocks 1..J-1 of both towers

    def build_prompted_model(self, clip_model, classnames):
        node = self.method_cfg
        model = MaPLeCLIP(clip_model, classnames, node.N_CTX, node.CTX_INIT, node.PROMPT_DEPTH,
                          recompute=self.recompute)
        print(f'MaPLe: context "{model.learner.prefix}" ({node.N_CTX} tokens), prompt depth {node.PROMPT_DEPTH}')
        return model

    def train_loss(self, image, label, batch_share):
        loss, _ = self.model.forward_train(image, label)
        return batch_share * loss
