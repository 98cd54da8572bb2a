"""What the prompt-learning baselines of the lineage (MaPLe, PromptSRC) share on top of CLIPTrainer.

- Their keys live under the published node names (``TRAINER.MAPLE``, ``TRAINER.PROMPTSRC``), not under
  the registered trainer name: ``node_name`` tells the engine, which reads ``PREC`` there.
- Only the prompts are registered with the engine (module ``model.trainable``, whose state-dict keys
  are the published checkpoints' own), so checkpoints hold the trainable tensors only, and
  :meth:`load_model` reads the published checkpoints too (their frozen entries are ignored).
- Text features depend on the prompts only: computed once per evaluation.

Not registered itself.
"""
import os.path as osp
from typing import Any, Dict, Optional

import torch

from mmrl.dassl.config import CfgNode
from mmrl.dassl.optim import build_lr_scheduler, build_optimizer
from mmrl.dassl.utils import find_checkpoint_file, load_checkpoint
from mmrl.dassl.utils import distributed as dist
from mmrl.model.checkpoint import check_learned_tensors

from .clip_base import CLIPTrainer


class PromptTrainer(CLIPTrainer):
    # The checkpoint folder (node_name, the method's config node, is CLIPTrainer's).
    model_name = ""

    @classmethod
    def add_config(cls, cfg) -> None:
        super().add_config(cfg)
        node = CfgNode()
        cls.method_defaults(node)
        # Ours: on CPU, fp16 and amp run as fp32 unless this is True (then exactly as on CUDA).
        node.PREC_ON_CPU = False
        # Ours: "on" recomputes the prompted image blocks in backward instead of keeping their
        # activations; "auto" does so on CPU only.
        node.RECOMPUTE = "auto"  # auto / on / off
        cfg.TRAINER[cls.node_name] = node

    @classmethod
    def method_defaults(cls, node: CfgNode) -> None:
        """The published keys and defaults of TRAINER.<node_name>."""
        raise NotImplementedError

    @property
    def method_cfg(self):
        return self.cfg.TRAINER[self.node_name]

    def check_cfg(self, cfg) -> None:
        node = cfg.TRAINER[self.node_name]
        if node.RECOMPUTE not in ("auto", "on", "off"):
            raise ValueError(f"TRAINER.{self.node_name}.RECOMPUTE must be auto, on or off, got {node.RECOMPUTE!r}")

    @property
    def recompute(self) -> bool:
        choice = self.method_cfg.RECOMPUTE
        return choice == "on" or (choice == "auto" and self.device.type == "cpu")

    # ---- building -------------------------------------------------------------------------------
    def build_prompted_model(self, clip_model, classnames):
        """The method's model (``.trainable`` holds the prompts)."""
        raise NotImplementedError

    def build_model(self):
        self.clip_model = self.load_clip()
        classnames = list(self.dm.dataset.classnames)
        self.num_classes = len(classnames)
        self.model = self.build_prompted_model(self.clip_model, classnames).to(self.device)
        trainable = self.model.trainable
        names = [n for n, p in trainable.named_parameters() if p.requires_grad]
        print(f"Parameters to be updated ({sum(p.numel() for p in trainable.parameters()):,}): {names}")
        self.optim = build_optimizer(trainable, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model(self.model_name, trainable, self.optim, self.sched)

    def checkpoint_extra(self, name) -> Dict[str, Any]:
        return {"trainer": self.cfg.TRAINER.NAME, "dataset": self.cfg.DATASET.NAME,
                "classnames": list(self.dm.dataset.classnames)}

    # ---- training -------------------------------------------------------------------------------
    def train_loss(self, image: torch.Tensor, label: torch.Tensor, batch_share: float) -> torch.Tensor:
        """This rank's share of the batch loss."""
        raise NotImplementedError

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        n = label.shape[0]
        (n_global,) = dist.sum_over_ranks([n])
        with self.autocast():
            loss = self.train_loss(image, label, n / n_global)
        self.model_backward_and_update(loss)
        (loss_sum,) = dist.sum_over_ranks([loss.item()])
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss_sum}

    # ---- evaluation -----------------------------------------------------------------------------
    def evaluation_context(self) -> torch.Tensor:
        with torch.no_grad(), self.autocast():
            return self.model.text_features()

    def model_inference(self, image, context: Optional[torch.Tensor] = None):
        text_features = self.evaluation_context() if context is None else context
        with self.autocast():
            logits = self.in_chunks(lambda x: self.model.logits(x, text_features), image)
        return logits.float()

    def result_extra(self) -> Dict[str, Any]:
        return {"logits": "prompted"}

    # ---- loading --------------------------------------------------------------------------------
    def load_model(self, directory, epoch=None):
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given "
                  "(ignore this if it's done on purpose)")
            return
        path = find_checkpoint_file(osp.join(directory, self.model_name), epoch)
        checkpoint = load_checkpoint(path)
        self.check_checkpoint(checkpoint, path, resuming=False)
        found = checkpoint["state_dict"]
        own = self.model.trainable.state_dict()
        hint = f"the checkpoint was trained with other TRAINER.{self.node_name} values or another backbone"
        check_learned_tensors(own, found, path, hint)
        frozen = [k for k in found if k not in own]
        if frozen:
            # The published checkpoints hold the whole model: CLIP's frozen weights and the token
            # embeddings of their class names, none of which is learned.
            print(f"Ignoring {len(frozen)} frozen entries of the checkpoint (e.g. {frozen[0]!r})")
        self.model.trainable.load_state_dict({k: found[k] for k in own}, strict=True)
        self.model_epoch = checkpoint.get("epoch")
        print(f'Loading weights to {self.model_name} from "{path}" (epoch = {self.model_epoch})')
