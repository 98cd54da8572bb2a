"""MMRL++: MMRL with shared-residual aligners, progressive composition and a low-rank projection.

Everything but the keys of its learner (``mmrl.model.representation.MMRLppLearner``: the architecture
fields and BETA) is MMRL's; see ``trainers/mmrl.py``.
"""
from mmrl.dassl.engine import TRAINER_REGISTRY

from .mmrl import MMRL


@TRAINER_REGISTRY.register()
class MMRLpp(MMRL):
    table_rank = 6
    variant = "MMRLpp"

    @classmethod
    def add_config(cls, cfg) -> None:
        super().add_config(cfg)  # MMRL's keys, under TRAINER.MMRLpp
        node = cfg.TRAINER[cls.variant]
        node.BETA = 0.9
        node.PROJ_LORA_DIM = 64
        node.RES_LORA_DIM = 4
