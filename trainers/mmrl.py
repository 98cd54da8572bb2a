"""MMRL: multi-modal representation learning on a frozen CLIP (CVPR 2025).

The trainer wires the configuration to the model pieces of ``mmrl.model``; the maths lives there.
Only the learner (representation tokens, their maps and the representation projection) is registered
with the engine, so checkpoints hold the trainable tensors and nothing of CLIP.
"""
import os
from typing import Optional

import torch

from mmrl.dassl.config import CfgNode
from mmrl.dassl.engine import TRAINER_REGISTRY
from mmrl.dassl.metrics import compute_accuracy
from mmrl.dassl.optim import build_lr_scheduler, build_optimizer
from mmrl.dassl.utils import distributed as dist
from mmrl.dassl.utils import find_checkpoint_file, load_checkpoint
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.reference import from_reference_state_dict, is_reference_state_dict, reference_variant
from mmrl.model.representation import RepArch

from .clip_base import CLIPTrainer

# The reference implementation evaluates cross-dataset transfer from ImageNet; checkpoints that do not
# record their training dataset (the reference's own) are taken to come from there.
DEFAULT_SOURCE_DATASET = "ImageNet"
# Folder names a checkpoint of this method may sit under: ours and the reference's, then an older
# reference release's.
CHECKPOINT_FOLDERS = ("MultiModalRepresentationLearner", "MultiModalPromptLearner")


def scored_logits(task: str, subsample: str, dataset: str, source_dataset: str) -> str:
    """Which logits a test scores: "fused" (class + representation) or "class" (class token only).

    Decoupled inference of MMRL: the representation branch is trained on the training classes, so it
    is used where the test classes are those classes and dropped where they are unseen.
    - B2N: base classes -> fused; new (and all) -> class.
    - FS: fused.
    - CD: the source dataset the model was trained on -> fused; every other dataset -> class.
    """
    if task == "B2N":
        return "fused" if subsample == "base" else "class"
    if task == "FS":
        return "fused"
    if task == "CD":
        return "fused" if dataset == source_dataset else "class"
    raise ValueError(f"TASK must be one of B2N, FS, CD, got {task!r}")


@TRAINER_REGISTRY.register()
class MMRL(CLIPTrainer):
    variant = "MMRL"
    model_name = CHECKPOINT_FOLDERS[0]
    per_dataset_values = True

    @classmethod
    def add_config(cls, cfg) -> None:
        """``TRAINER.<variant>``: the method's keys with the lineage's defaults."""
        super().add_config(cfg)
        node = CfgNode()
        node.ALPHA = 0.7
        node.REG_WEIGHT = 1.0
        node.REP_LAYERS = []
        node.REP_DIM = 512
        node.N_REP_TOKENS = 5
        node.PREC = "fp16"  # fp16 / fp32 / amp
        # Ours: "on" recomputes the blocks above the first insertion layer in backward instead of
        # keeping their activations (~0.3 GB less at ViT-B/16, batch 4; ~20% more time per step);
        # "auto" does so on CPU, where memory is scarce, and not on a GPU.
        node.RECOMPUTE = "auto"  # auto / on / off
        cfg.TRAINER[cls.variant] = node

    @property
    def method_cfg(self):
        return self.cfg.TRAINER[self.variant]

    def check_cfg(self, cfg):
        # PREC is checked by the engine and REP_LAYERS by RepArch.
        node = cfg.TRAINER[self.variant]
        if node.RECOMPUTE not in ("auto", "on", "off"):
            raise ValueError(f"TRAINER.{self.variant}.RECOMPUTE must be auto, on or off, got {node.RECOMPUTE!r}")
        scored_logits(cfg.TASK, cfg.DATASET.SUBSAMPLE_CLASSES, cfg.DATASET.NAME, DEFAULT_SOURCE_DATASET)

    # ---- building -------------------------------------------------------------------------------
    def arch_from_cfg(self, clip_model) -> RepArch:
        node = self.method_cfg
        return RepArch.from_clip(clip_model, self.variant, node.N_REP_TOKENS, node.REP_LAYERS, node.REP_DIM,
                                 **self.extra_arch())

    def extra_arch(self) -> dict:
        return {}

    def model_kwargs(self) -> dict:
        return {"alpha": self.method_cfg.ALPHA, "recompute": self.recompute}

    @property
    def recompute(self) -> bool:
        # "auto": trade time for memory on CPU only; a GPU has the memory and is better spent on speed.
        choice = self.method_cfg.RECOMPUTE
        return choice == "on" or (choice == "auto" and self.device.type == "cpu")

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
        self.model = RepresentationCLIP(self.clip_model, self.prompts, arch, sharding=sharding,
                                        **self.model_kwargs()).to(self.device)
        learner = self.model.learner
        n_trainable = sum(p.numel() for p in learner.parameters() if p.requires_grad)
        print(f"Trainable parameters: {n_trainable:,} (CLIP stays frozen)"
              f"{'; token-carrying blocks are recomputed in backward' if self.recompute else ''}")
        optim = build_optimizer(learner, self.cfg.OPTIM)
        sched = build_lr_scheduler(optim, self.cfg.OPTIM)
        if self.model_name in self.get_model_names():
            # An evaluation that meets a checkpoint of another architecture rebuilds the learner.
            self.replace_model(self.model_name, learner, optim, sched)
        else:
            self.register_model(self.model_name, learner, optim, sched)
        self.optim, self.sched = optim, sched

    def checkpoint_extra(self, name):
        return {"arch": self.arch.to_dict(), "trainer": self.variant, "dataset": self.cfg.DATASET.NAME,
                "backbone": self.cfg.MODEL.BACKBONE.NAME}

    # ---- training -------------------------------------------------------------------------------
    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        # This rank's share of the global batch (1 in one process): its loss is its share of the
        # global loss, and the engine sums the gradients over ranks.
        n = label.shape[0]
        (n_global,) = dist.sum_over_ranks([n])
        with self.autocast():
            out = self.model.forward_train(image, label, reg_weight=self.method_cfg.REG_WEIGHT, batch_share=n / n_global)
        loss = out["loss"]
        self.model_backward_and_update(loss)
        acc = compute_accuracy(out["logits_fused"], label)[0].item()
        if dist.is_distributed():
            loss_sum, acc_sum = dist.sum_over_ranks([loss.item(), acc * n])
            summary = {"loss": loss_sum, "acc": acc_sum / n_global}
        else:
            summary = {"loss": loss.item(), "acc": acc}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    # ---- evaluation -----------------------------------------------------------------------------
    def test(self, split=None):
        # Text features depend only on the learner: computed once per evaluation, dropped after it.
        self._eval_text_features: Optional[torch.Tensor] = None
        which = scored_logits(self.cfg.TASK, self.cfg.DATASET.SUBSAMPLE_CLASSES, self.cfg.DATASET.NAME,
                              self.source_dataset)
        print(f"Scoring the {which} logits (TASK {self.cfg.TASK})")
        self._scored = which
        try:
            return super().test(split)
        finally:
            self._eval_text_features = None

    def model_inference(self, image):
        with self.autocast():
            if self._eval_text_features is None:
                self._eval_text_features = self.model.text_features()
            index = 2 if self._scored == "fused" else 0  # (logits_c, logits_r, logits_fused)
            logits = self.in_chunks(lambda x: self.model.logits(x, self._eval_text_features)[index], image)
        return logits.float()

    # ---- loading --------------------------------------------------------------------------------
    def _checkpoint_folder(self, directory: str) -> str:
        for name in CHECKPOINT_FOLDERS:
            folder = os.path.join(directory, name)
            if os.path.isdir(folder):
                return folder
        present = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        raise FileNotFoundError(
            f'Model not found at "{os.path.join(directory, self.model_name)}" '
            f"(the folder {directory} holds: {present or 'nothing'}). Pass the output folder of a training "
            "run with --model-dir."
        )

    def load_model(self, directory, epoch=None):
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given "
                  "(ignore this if it's done on purpose)")
            return
        path = find_checkpoint_file(self._checkpoint_folder(directory), epoch)
        checkpoint = load_checkpoint(path)
        state_dict = checkpoint["state_dict"]

        if is_reference_state_dict(state_dict):
            found = reference_variant(state_dict)
            self._check_variant(found, path)
            state_dict, arch_fields = from_reference_state_dict(state_dict, tuple(self.method_cfg.REP_LAYERS))
            arch = RepArch.from_dict({**self.arch.to_dict(), **arch_fields})
            source = DEFAULT_SOURCE_DATASET
        elif "arch" in checkpoint:
            arch = RepArch.from_dict(checkpoint["arch"])
            self._check_variant(arch.variant, path)
            source = checkpoint.get("dataset", DEFAULT_SOURCE_DATASET)
        else:
            raise ValueError(f"{path} is neither a checkpoint of this project (no 'arch' entry) nor a reference "
                             f"{self.variant} checkpoint (no representation_learner.* keys)")

        widths = ("visual_width", "text_width", "embed_dim")
        if any(getattr(arch, w) != getattr(self.arch, w) for w in widths):
            raise ValueError(
                f"{path} was trained on a CLIP with widths "
                f"{ {w: getattr(arch, w) for w in widths} } (backbone {checkpoint.get('backbone', 'unknown')!r}), "
                f"but MODEL.BACKBONE.NAME {self.cfg.MODEL.BACKBONE.NAME!r} has "
                f"{ {w: getattr(self.arch, w) for w in widths} }: evaluate it with the backbone it was trained on"
            )
        if arch != self.arch:
            # The architecture comes from the checkpoint, not from the config of this run (for example
            # EuroSAT's REP_DIM 2048 must not apply to a model trained on ImageNet).
            print(f"Using the architecture stored in the checkpoint: {arch.to_dict()}")
            self.build_representation(arch)
        self.model.load_trainable_state_dict(state_dict)
        self.source_dataset = source
        print(f'Loading weights to {self.model_name} from "{path}" (epoch = {checkpoint.get("epoch")})')

    def _check_variant(self, found: str, path: str) -> None:
        if found != self.variant:
            raise ValueError(f"{path} is a {found} checkpoint, but the trainer is {self.variant}: "
                             f"pass --trainer {found} and its config")
