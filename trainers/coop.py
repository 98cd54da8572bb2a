"""CoOp: context optimisation for CLIP's class prompts (Zhou et al., "Learning to Prompt for
Vision-Language Models", IJCV 2022; published code: KaiyangZhou/CoOp, trainers/coop.py).

The config keys, defaults, prompts, initialisation, loss, log lines and checkpoint layout
(``prompt_learner/model.pth.tar-<epoch>``, the learner's ``ctx``) are the published ones, so its
checkpoints load here. The maths lives in ``mmrl.model.coop``.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch

from mmrl.dassl.config import CfgNode
from mmrl.dassl.engine import TRAINER_REGISTRY
from mmrl.dassl.metrics import compute_accuracy
from mmrl.dassl.optim import build_lr_scheduler, build_optimizer
from mmrl.dassl.utils import find_checkpoint_file, load_checkpoint
from mmrl.dassl.utils import distributed as dist
from mmrl.model.coop import PromptCLIP
from mmrl.model.prompted_text import CLASS_TOKEN_POSITIONS

from .clip_base import CLIPTrainer


@dataclass(frozen=True)
class EvalText:
    """One evaluation's text features [C, d], computed once for it (they depend only on the context)."""

    text_features: torch.Tensor


@TRAINER_REGISTRY.register()
class CoOp(CLIPTrainer):
    """Context Optimization (CoOp), https://arxiv.org/abs/2109.01134."""
    table_rank = 1

    # The published config node (TRAINER.COOP, not TRAINER.<registered name>) and model folder.
    node_name = "COOP"
    model_name = "prompt_learner"
    conditional = False

    @classmethod
    def add_config(cls, cfg) -> None:
        super().add_config(cfg)
        node = CfgNode()
        node.N_CTX = 16
        node.CTX_INIT = ""
        node.PREC = "fp16"  # fp16 / fp32 / amp / bf16 (ours)
        # Ours: on CPU, fp16 and amp run as fp32 unless this is True (then exactly as on CUDA).
        node.PREC_ON_CPU = False
        cls.method_keys(node)
        cfg.TRAINER[cls.node_name] = node

    @classmethod
    def method_keys(cls, node) -> None:
        node.CSC = False  # class-specific contexts
        node.CLASS_TOKEN_POSITION = "end"  # end / middle / front

    @property
    def method_cfg(self):
        return self.cfg.TRAINER[self.node_name]

    def check_cfg(self, cfg) -> None:
        node = cfg.TRAINER[self.node_name]
        where = f"TRAINER.{self.node_name}"
        if not isinstance(node.N_CTX, int) or node.N_CTX < 1:
            raise ValueError(f"{where}.N_CTX must be a positive integer, got {node.N_CTX!r}")
        position = node.get("CLASS_TOKEN_POSITION", "end")
        if position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(f"{where}.CLASS_TOKEN_POSITION must be one of {', '.join(CLASS_TOKEN_POSITIONS)}, "
                             f"got {position!r}")

    def prompt_kwargs(self) -> Dict[str, Any]:
        node = self.method_cfg
        return {"csc": node.CSC, "position": node.CLASS_TOKEN_POSITION}

    # ---- building -------------------------------------------------------------------------------
    def build_model(self):
        cfg, node = self.cfg, self.method_cfg
        clip_model = self.load_clip()
        classnames = self.dm.dataset.classnames
        self.num_classes = len(classnames)
        print(f"Building custom CLIP ({self.__class__.__name__})")
        if not node.CTX_INIT:
            print("Initializing class-specific contexts" if self.prompt_kwargs().get("csc") else
                  "Initializing a generic context")
        self.model = PromptCLIP(clip_model, classnames, node.N_CTX, node.CTX_INIT, meta_net=self.conditional,
                                **self.prompt_kwargs()).to(self.device)
        learner = self.model.learner
        print(f'Initial context: "{self.model.prompt_prefix}"')
        print(f"Number of context words (tokens): {learner.n_ctx}")
        print(f"Parameters to be updated: {sorted(n for n, p in learner.named_parameters() if p.requires_grad)} "
              f"({sum(p.numel() for p in learner.parameters()):,}; CLIP stays frozen)")
        if cfg.MODEL.INIT_WEIGHTS:
            learner.load_published(load_checkpoint(cfg.MODEL.INIT_WEIGHTS)["state_dict"], cfg.MODEL.INIT_WEIGHTS)
        self.optim = build_optimizer(learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model(self.model_name, learner, self.optim, self.sched)

    def checkpoint_extra(self, name):
        return {"trainer": self.__class__.__name__, "dataset": self.cfg.DATASET.NAME,
                "classnames": list(self.dm.dataset.classnames), "prompt_prefix": self.model.prompt_prefix}

    # ---- training -------------------------------------------------------------------------------
    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        # This rank's share of the global batch (all of it in one process): the engine sums the
        # ranks' gradients, so each rank's loss is its share of the global mean.
        n = label.shape[0]
        (n_global,) = dist.sum_over_ranks([n])
        with self.autocast():
            logits, loss = self.model.forward_train(image, label, share=n / n_global)
        self.model_backward_and_update(loss)
        summary = self.loss_summary(loss, logits, label, n, n_global)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def loss_summary(self, loss, logits, label, n: int, n_global: int) -> Dict[str, float]:
        """The published log values: loss and accuracy (CoCoOp logs the loss only)."""
        acc = compute_accuracy(logits, label)[0].item()
        if not dist.is_distributed():
            return {"loss": loss.item(), "acc": acc}
        loss_sum, correct = dist.sum_over_ranks([loss.item(), acc * n])
        return {"loss": loss_sum, "acc": correct / n_global}

    # ---- evaluation -----------------------------------------------------------------------------
    def evaluation_context(self) -> Optional[EvalText]:
        with torch.no_grad(), self.autocast():
            return EvalText(self.model.text_features())

    def model_inference(self, image, context: Optional[EvalText] = None):
        text = None if context is None else context.text_features
        with self.autocast():
            logits = self.in_chunks(lambda x: self.model.logits(x, text), image)
        return logits.float()

    # ---- loading --------------------------------------------------------------------------------
    def load_model(self, directory, epoch=None):
        """The published loader's files (``model-best.pth.tar``, ``model.pth.tar-<epoch>``; the latest
        epoch when neither is asked for and there is no best), its frozen token embeddings ignored."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        for name in self.get_model_names():
            path = find_checkpoint_file(f"{directory}/{name}", epoch)
            checkpoint = load_checkpoint(path)
            self.check_checkpoint(checkpoint, path, resuming=False)
            trainer = checkpoint.get("trainer")
            if trainer is not None and trainer != self.__class__.__name__:
                raise ValueError(f"{path} is a {trainer} checkpoint, but the trainer is {self.__class__.__name__}: "
                                 f"pass --trainer {trainer} and its config")
            self._models[name].load_published(checkpoint["state_dict"], path)
            self.model_epoch = checkpoint.get("epoch")
            print(f'Loading weights to {name} from "{path}" (epoch = {checkpoint.get("epoch")})')
