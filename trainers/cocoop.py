"""CoCoOp: conditional context optimisation (Zhou et al., "Conditional Prompt Learning for
Vision-Language Models", CVPR 2022; published code: KaiyangZhou/CoOp, trainers/cocoop.py).

CoOp's context shifted, for each image, by a token a meta-network computes from the image's
features; the class prompts are then the image's own. The published code runs the text tower image
by image; ours runs all the images of a batch with all the classes in one pass (in chunks), with the
same numbers. Keys under TRAINER.COCOOP, checkpoints ``prompt_learner/`` with ``ctx`` and
``meta_net.linear1`` / ``meta_net.linear2``, as published.
"""
from typing import Dict

from mmrl.dassl.engine import TRAINER_REGISTRY
from mmrl.dassl.utils import distributed as dist

from .coop import CoOp


@TRAINER_REGISTRY.register()
class CoCoOp(CoOp):
    """Conditional Context Optimization (CoCoOp), https://arxiv.org/abs/2203.05557."""
    table_rank = 2

    node_name = "COCOOP"
    conditional = True

    @classmethod
    def method_keys(cls, node) -> None:
        # CoCoOp has one context for every class, with the class name at the end.
        pass

    def prompt_kwargs(self):
        return {}

    def loss_summary(self, loss, logits, label, n: int, n_global: int) -> Dict[str, float]:
        if not dist.is_distributed():
            return {"loss": loss.item()}
        (loss_sum,) = dist.sum_over_ranks([loss.item()])
        return {"loss": loss_sum}

    def evaluation_context(self):
        # The text features depend on each image: nothing to share between batches.
        return None
