"""MMRL++: MMRL with shared-residual aligners, progressive composition and a low-rank projection.

Everything but the architecture fields and BETA is MMRL's; see ``trainers/mmrl.py``.
"""
from mmrl.dassl.engine import TRAINER_REGISTRY

from .mmrl import MMRL


@TRAINER_REGISTRY.register()
class MMRLpp(MMRL):
    variant = "MMRLpp"

    @classmethod
    def add_config(cls, cfg) -> None:
        super().add_config(cfg)  # MMRL's keys, under TRAINER.MMRLpp
        node = cfg.TRAINER[cls.variant]
        node.BETA = 0.9
        node.PROJ_LORA_DIM = 64
        node.RES_LORA_DIM = 4

    def extra_arch(self) -> dict:
        node = self.method_cfg
        return {"proj_lora_dim": node.PROJ_LORA_DIM, "res_lora_dim": node.RES_LORA_DIM}

    def model_kwargs(self) -> dict:
        return {**super().model_kwargs(), "beta": self.method_cfg.BETA}
