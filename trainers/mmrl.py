"""MMRL: multi-modal representation learning on a frozen CLIP (CVPR 2025).

The trainer wires the configuration to the model pieces of ``mmrl.model``; the maths lives there.
Only the learner (representation tokens, their maps and the representation projection) is registered
with the engine, so checkpoints hold the trainable tensors and nothing of CLIP.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch

from mmrl.dassl.config import CfgNode
from mmrl.dassl.engine import TRAINER_REGISTRY
from mmrl.dassl.metrics import compute_accuracy
from mmrl.dassl.optim import build_lr_scheduler, build_optimizer
from mmrl.dassl.utils import distributed as dist
from mmrl.model.checkpoint import (CHECKPOINT_FOLDERS, DEFAULT_SOURCE_DATASET, checkpoint_arch, create_model,
                                   read_learner)
from mmrl.model.memory import choose_recompute, keep_freed_memory
from mmrl.model.mmrl import decoupled_inference
from mmrl.model.representation import RepArch

from .clip_base import CLIPTrainer


def scored_logits(task: str, subsample: str, dataset: str, source_dataset: str) -> str:
    """Which logits a test scores: "fused" (class + representation) or "class" (class token only).

    Decoupled inference (``mmrl.model.mmrl.decoupled_inference``): fused where the test classes are
    the training classes, the class token alone where they are unseen.
    - B2N: base classes -> fused; new (and all) -> class.
    - FS: fused.
    - CD: the source dataset the model was trained on -> fused; every other dataset -> class.
    """
    if task == "B2N":
        return decoupled_inference(subsample == "base")
    if task == "FS":
        return decoupled_inference(True)
    if task == "CD":
        return decoupled_inference(dataset == source_dataset)
    raise ValueError(f"TASK must be one of B2N, FS, CD, got {task!r}")


@dataclass(frozen=True)
class EvalContext:
    """One evaluation's shared inputs: the learned text features, computed once for it, and
    which logits it scores."""

    text_features: torch.Tensor  # [C, d]
    scored: str  # "fused" | "class"


@TRAINER_REGISTRY.register()
class MMRL(CLIPTrainer):
    table_rank = 5
    variant = "MMRL"
    model_name = CHECKPOINT_FOLDERS[0]
    per_dataset_values = True

    @classmethod
    def add_config(cls, cfg) -> None:
        """``TRAINER.<variant>``: the method's keys with the papers' values (those of the reference's
        vit_b16.yaml; the lineage's extend_cfg had PREC fp16 and no REP_LAYERS). The YAML files state
        only what a protocol changes, dataset_overrides.yaml what a dataset does."""
        super().add_config(cfg)
        node = CfgNode()
        node.ALPHA = 0.7
        node.REG_WEIGHT = 1.0
        node.REP_LAYERS = [6, 7, 8, 9, 10, 11, 12]
        node.REP_DIM = 512
        node.N_REP_TOKENS = 5
        node.PREC = "amp"  # fp16 / fp32 / amp / bf16 (ours)
        # Ours: on CPU, fp16 and amp run as fp32 unless this is True (then exactly as on CUDA).
        node.PREC_ON_CPU = False
        # Ours: "on" recomputes the blocks from the first insertion layer on in backward instead of
        # keeping their activations (less memory, ~20-40% more time per step); "auto" keeps them when
        # the step's estimated activations fit MEMORY_BUDGET_GB or, when it is 0, half the free GPU
        # memory, on CPU also no more than the run already holds (mmrl.model.memory.memory_budget).
        node.RECOMPUTE = "auto"  # auto / on / off
        node.MEMORY_BUDGET_GB = 0.0
        cfg.TRAINER[cls.variant] = node

    @property
    def method_cfg(self):
        return self.cfg.TRAINER[self.variant]

    def check_cfg(self, cfg):
        # PREC is checked by the engine and REP_LAYERS by RepArch.
        node = cfg.TRAINER[self.variant]
        if node.RECOMPUTE not in ("auto", "on", "off"):
            raise ValueError(f"TRAINER.{self.variant}.RECOMPUTE must be auto, on or off, got {node.RECOMPUTE!r}")
        if float(node.MEMORY_BUDGET_GB) < 0:
            raise ValueError(f"TRAINER.{self.variant}.MEMORY_BUDGET_GB must be 0 (the default budget) or a "
                             f"positive number of GB, got {node.MEMORY_BUDGET_GB!r}")
        scored_logits(cfg.TASK, cfg.DATASET.SUBSAMPLE_CLASSES, cfg.DATASET.NAME, DEFAULT_SOURCE_DATASET)

    # ---- building -------------------------------------------------------------------------------
    def arch_from_cfg(self, clip_model) -> RepArch:
        # The learner of this variant declares which keys define its architecture.
        return RepArch.from_config(clip_model, self.variant, self.method_cfg)

    def build_model(self):
        self.clip_model = self.load_clip()
        self.prompts = self.class_prompts()
        self.num_classes = len(self.prompts)
        self.source_dataset = self.cfg.DATASET.NAME
        self.build_representation(self.arch_from_cfg(self.clip_model))

    def build_representation(self, arch: RepArch) -> None:
        """(Re)build the learner for an architecture, with its optimizer and scheduler."""
        self.arch = arch
        print(f"Building {self.variant} (architecture: {arch.to_dict()})")
        # Under torchrun each rank runs its share of the class prompts through the text tower.
        sharding = dist.RowSharding("classes") if dist.is_distributed() else None
        self.model = create_model(self.clip_model, self.prompts, arch, self.method_cfg,
                                  sharding=sharding).to(self.device)
        node = self.method_cfg
        batch = dist.check_global_batch(self.cfg.DATALOADER.TRAIN_X.BATCH_SIZE)
        self.recompute, why = choose_recompute(self.model, node.RECOMPUTE, batch, self.precision, self.device,
                                               node.MEMORY_BUDGET_GB)
        self.model.recompute = self.recompute
        print(f"Recomputation {'on' if self.recompute else 'off'} (TRAINER.{self.variant}.RECOMPUTE {why})")
        if self.device.type == "cpu":
            # After the decision: its CPU budget is the resident size before any memory is kept.
            print(f"Host memory: {keep_freed_memory()}")
        learner = self.model.learner
        n_trainable = sum(p.numel() for p in learner.parameters() if p.requires_grad)
        print(f"Trainable parameters: {n_trainable:,} (CLIP stays frozen)")
        optim = build_optimizer(learner, self.cfg.OPTIM)
        sched = build_lr_scheduler(optim, self.cfg.OPTIM)
        if self.model_name in self.get_model_names():
            # An evaluation that meets a checkpoint of another architecture rebuilds the learner.
            self.replace_model(self.model_name, learner, optim, sched)
        else:
            self.register_model(self.model_name, learner, optim, sched)
        self.optim, self.sched = optim, sched

    def checkpoint_extra(self, name):
        # The backbone and the resolved config are recorded by the engine (checkpoint_record). The
        # classes and prompt template the model was trained with are what a prediction on new images
        # needs (mmrl.predict).
        return {"arch": self.arch.to_dict(), "trainer": self.variant, "dataset": self.cfg.DATASET.NAME,
                "classnames": list(self.dm.dataset.classnames), "template": self.prompt_template}

    # ---- training -------------------------------------------------------------------------------
    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        # This rank's share of the global batch (all of it in one process): its loss is its share of
        # the global loss, and the engine sums the gradients over ranks.
        n = label.shape[0]
        (n_global,) = dist.sum_over_ranks([n])
        with self.autocast():
            out = self.model.forward_train(image, label, reg_weight=self.method_cfg.REG_WEIGHT,
                                           batch_share=n / n_global)
        self.model_backward_and_update(out.loss)
        acc = compute_accuracy(out.logits_fused, label)[0].item()
        if dist.is_distributed():
            loss_sum, correct_percent = dist.sum_over_ranks([out.loss.item(), acc * n])
            summary = {"loss": loss_sum, "acc": correct_percent / n_global}
        else:
            summary = {"loss": out.loss.item(), "acc": acc}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    # ---- evaluation -----------------------------------------------------------------------------
    def evaluation_context(self) -> EvalContext:
        # Text features depend only on the learner: computed once per evaluation, dropped after it.
        which = scored_logits(self.cfg.TASK, self.cfg.DATASET.SUBSAMPLE_CLASSES, self.cfg.DATASET.NAME,
                              self.source_dataset)
        print(f"Scoring the {which} logits (TASK {self.cfg.TASK})")
        self._scored = which  # recorded in results.json
        with torch.no_grad(), self.autocast():
            return EvalContext(self.model.text_features(), which)

    def model_inference(self, image, context: Optional[EvalContext] = None):
        context = context or self.evaluation_context()
        with self.autocast():
            logits = self.in_chunks(lambda x: self.model.inference_logits(x, context.text_features, context.scored),
                                    image)
        return logits.float()

    def result_extra(self) -> Dict[str, Any]:
        return {"logits": self._scored}

    # ---- loading --------------------------------------------------------------------------------
    def load_model(self, directory, epoch=None):
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given "
                  "(ignore this if it's done on purpose)")
            return
        found = read_learner(directory, epoch, self.method_cfg.REP_LAYERS)
        path, checkpoint, state_dict = found.path, found.checkpoint, found.state_dict
        self.check_checkpoint(checkpoint, path, resuming=False)
        self._check_variant(found.variant, path)
        arch = checkpoint_arch(found, self.clip_model, self.cfg.MODEL.BACKBONE.NAME)
        source = found.source_dataset
        if arch != self.arch:
            # The architecture comes from the checkpoint, not from the config of this run (for example
            # EuroSAT's REP_DIM 2048 must not apply to a model trained on ImageNet).
            print(f"Using the architecture stored in the checkpoint: {arch.to_dict()}")
            self.build_representation(arch)
        self.model.load_trainable_state_dict(state_dict)
        self.source_dataset = source
        self.model_epoch = checkpoint.get("epoch")
        print(f'Loading weights to {self.model_name} from "{path}" (epoch = {checkpoint.get("epoch")})')

    def _check_variant(self, found: str, path: str) -> None:
        if found != self.variant:
            raise ValueError(f"{path} is a {found} checkpoint, but the trainer is {self.variant}: "
                             f"pass --trainer {found} and its config")
