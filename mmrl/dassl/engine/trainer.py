"""Trainer lifecycle with Dassl's hooks, log lines and checkpoint layout.

Beyond Dassl: the engine owns the precision policy (fp32, fp16, amp with a
GradScaler whose state is checkpointed, bf16), writes a checkpoint after every epoch so an interrupted run can
resume (keeping Dassl's final folder layout), restores RNG states on resume,
and shows tqdm progress bars on stderr. Under torchrun it runs data-parallel
(``..utils.distributed``): gradients summed over ranks, evaluation sharded,
files written by rank 0 only.
"""
from __future__ import annotations

import contextlib
import datetime
import math
import os
import os.path as osp
import sys
import time
from collections import OrderedDict
from typing import Any, ContextManager, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from tqdm import tqdm

from mmrl.results import write_record

from ..config import config_differences, config_record, write_config_record
from ..data.data_manager import set_loader_epoch
from ..evaluation import build_evaluator
from ..utils import (
    AverageMeter,
    MetricMeter,
    epoch_file_name,
    find_checkpoint_file,
    get_rng_state,
    load_checkpoint,
    mkdir_if_missing,
    resume_from_checkpoint,
    save_checkpoint,
)
from ..utils import distributed as dist
from ..utils.torchtools import POINTER_FILE, remove_stale_temporaries
from .interrupt import RunInterrupted

# The override of --force for train.py files of the lineage, which have no such flag.
FORCE_ENV = "MMRL_FORCE"
FORCE_HOW = f"--force or {FORCE_ENV}=1"
FORCE_HINT = f"--force (or set {FORCE_ENV}=1 where the train.py has no --force)"

Names = Optional[Union[str, Sequence[str]]]

_TENSORBOARD_NOTICE_SHOWN = False


def _summary_writer_class() -> Any:
    """TensorBoard's SummaryWriter, or None (with a one-time notice) if it
    cannot be imported."""
    global _TENSORBOARD_NOTICE_SHOWN
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        if not _TENSORBOARD_NOTICE_SHOWN:
            print(
                f"TensorBoard is not available ({e}); training scalars will not "
                "be written (pip install tensorboard to enable them)"
            )
            _TENSORBOARD_NOTICE_SHOWN = True
        return None
    return SummaryWriter


class TrainerBase:
    """Registered models with their optimizers and schedulers, and the loop."""

    # Whether the trainer's per-dataset values (``dataset_overrides.yaml``) sit next to its
    # config files; the config assembly then requires and applies them.
    per_dataset_values: bool = False
    # The config node of a trainer whose keys are not under TRAINER.<registered name> (e.g.
    # TRAINER.MAPLE for MaPLe, as its published code names it); empty when they are. Its PREC is
    # read there, and its per-dataset values are merged into it.
    node_name: str = ""

    @classmethod
    def add_config(cls, cfg: Any) -> None:
        """Add the trainer's own config keys with their defaults (e.g. ``TRAINER.<NAME>``).

        Called by the config assembly on the engine's defaults before any YAML is merged, for
        the trainer being built only; a subclass extends its parent's keys by calling
        ``super().add_config(cfg)`` first.
        """

    def __init__(self) -> None:
        self._models: "OrderedDict[str, nn.Module]" = OrderedDict()
        self._optims: "OrderedDict[str, Optional[torch.optim.Optimizer]]" = OrderedDict()
        self._scheds: "OrderedDict[str, Any]" = OrderedDict()
        self._writer: Any = None

    def register_model(
        self,
        name: str = "model",
        model: Optional[nn.Module] = None,
        optim: Optional[torch.optim.Optimizer] = None,
        sched: Any = None,
    ) -> None:
        if self.__dict__.get("_models") is None:
            raise AttributeError(
                "Cannot assign model before super().__init__() call"
            )
        if self.__dict__.get("_optims") is None:
            raise AttributeError(
                "Cannot assign optim before super().__init__() call"
            )
        if self.__dict__.get("_scheds") is None:
            raise AttributeError(
                "Cannot assign sched before super().__init__() call"
            )
        assert name not in self._models, "Found duplicate model names"
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def replace_model(
        self,
        name: str,
        model: nn.Module,
        optim: Optional[torch.optim.Optimizer] = None,
        sched: Any = None,
    ) -> None:
        """Swap a registered model with its optimizer and scheduler (e.g. an evaluation rebuilding a
        model for the architecture its checkpoint was trained with)."""
        if name not in self._models:
            raise KeyError(f"no model registered as {name!r}; registered: {list(self._models)}")
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names: Names = None) -> List[str]:
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        if not isinstance(names, list):
            names = [names]
        for name in names:
            assert name in names_real, f"Unknown model name {name!r}; registered: {names_real}"
        return names

    def checkpoint_extra(self, name: str) -> Dict[str, Any]:
        """Entries added to the checkpoint of model ``name`` (e.g. an "arch")."""
        return {}

    def checkpoint_record(self) -> Dict[str, Any]:
        """What every checkpoint records about the run that wrote it (its config, its backbone)."""
        return {}

    def check_checkpoint(self, checkpoint: Dict[str, Any], path: str, resuming: bool) -> None:
        """Refuse a checkpoint that does not fit this run; called before any of its state is loaded."""

    def save_model(
        self,
        epoch: int,
        directory: str,
        is_best: bool = False,
        val_result: Optional[float] = None,
        model_name: str = "",
        verbose: bool = True,
    ) -> None:
        """Save every registered model to ``directory/<name>/``; ``epoch`` is
        0-based and stored as the count of completed epochs. In a distributed
        run rank 0 writes and every rank returns once the files are complete."""
        if dist.is_main_process():
            self._save_model(epoch, directory, is_best, val_result, model_name, verbose)
        dist.barrier()

    def _save_model(
        self,
        epoch: int,
        directory: str,
        is_best: bool,
        val_result: Optional[float],
        model_name: str,
        verbose: bool,
    ) -> None:
        rng_state = get_rng_state()
        best_result = getattr(self, "best_result", None)
        for name in self.get_model_names():
            model_dict = self._models[name].state_dict()
            optim = self._optims[name]
            sched = self._scheds[name]
            state: Dict[str, Any] = {
                "state_dict": model_dict,
                "epoch": epoch + 1,
                "optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None,
                "val_result": val_result,
                "rng_state": rng_state,
            }
            if best_result is not None and math.isfinite(best_result):
                state["best_result"] = float(best_result)
            state.update(self.checkpoint_record())
            scaler = getattr(self, "scaler", None)
            if scaler is not None:
                # amp's loss scale and growth tracker: a resumed run scales as the
                # uninterrupted one would.
                state["scaler"] = scaler.state_dict()
            state.update(self.checkpoint_extra(name))
            save_checkpoint(
                state,
                osp.join(directory, name),
                is_best=is_best,
                model_name=model_name,
                verbose=verbose,
            )

    def resume_model_if_exist(self, directory: str) -> int:
        """Resume every model from ``directory/<name>/``; returns the number
        of completed epochs (0 when there is nothing to resume)."""
        names = self.get_model_names()
        for name in names:
            # A folder without a pointer holds no complete checkpoint.
            if not osp.isfile(osp.join(directory, name, POINTER_FILE)):
                print("No checkpoint found, train from scratch")
                return 0

        print(f"Found checkpoint at {directory} (will resume training)")
        start_epoch = 0
        for name in names:
            path = osp.join(directory, name)
            start_epoch, checkpoint = resume_from_checkpoint(
                path,
                self._models[name],
                self._optims[name],
                self._scheds[name],
                return_checkpoint=True,
                check=lambda ckpt, fpath: self.check_checkpoint(ckpt, fpath, resuming=True),
            )
            if checkpoint.get("best_result") is not None and hasattr(self, "best_result"):
                self.best_result = checkpoint["best_result"]
            scaler = getattr(self, "scaler", None)
            if scaler is not None and checkpoint.get("scaler"):
                scaler.load_state_dict(checkpoint["scaler"])
                print("Loaded GradScaler state")
        return start_epoch

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        """Load weights for evaluation: ``model-best.pth.tar`` when present
        and ``epoch`` is None, else ``model.pth.tar-<epoch>``, else the
        latest epoch file."""
        if not directory:
            print(
                "Note that load_model() is skipped as no pretrained "
                "model is given (ignore this if it's done on purpose)"
            )
            return

        for name in self.get_model_names():
            model_path = find_checkpoint_file(osp.join(directory, name), epoch)
            checkpoint = load_checkpoint(model_path)
            self.check_checkpoint(checkpoint, model_path, resuming=False)
            state_dict = checkpoint["state_dict"]
            ckpt_epoch = self.model_epoch = checkpoint["epoch"]
            val_result = checkpoint.get("val_result")
            if val_result is None:
                print(f"Load {model_path} to {name} (epoch={ckpt_epoch})")
            else:
                print(
                    f"Load {model_path} to {name} "
                    f"(epoch={ckpt_epoch}, val_result={val_result:.1f})"
                )
            self._models[name].load_state_dict(state_dict)

    def set_model_mode(self, mode: str = "train", names: Names = None) -> None:
        for name in self.get_model_names(names):
            if mode == "train":
                self._models[name].train()
            elif mode in ["test", "eval"]:
                self._models[name].eval()
            else:
                raise KeyError(f"Unknown model mode {mode!r}; use train, test or eval")

    def update_lr(self, names: Names = None) -> None:
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise FloatingPointError("Loss is infinite or NaN!")

    def init_writer(self, log_dir: str) -> None:
        if self.__dict__.get("_writer") is None or self._writer is None:
            writer_cls = _summary_writer_class()
            if writer_cls is None:
                return
            print(f"Initialize tensorboard (log_dir={log_dir})")
            self._writer = writer_cls(log_dir=log_dir)

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_scalar(self, tag: str, scalar_value: float, global_step: Optional[int] = None) -> None:
        if self._writer is None:
            # Eval-only runs, or TensorBoard unavailable.
            return
        self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch: int, max_epoch: int) -> None:
        """Generic loop; ``before_train`` may move ``self.start_epoch`` (resume)."""
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch

        self._stage = "setup"
        try:
            self.before_train()
            self._epochs_saved = self.start_epoch
            for self.epoch in range(self.start_epoch, self.max_epoch):
                self._stage = "epoch"
                self.batch_idx = -1
                self.before_epoch()
                self.run_epoch()
                self.after_epoch()
            self._stage = "final"
            self.after_train()
        except RunInterrupted as interrupt:
            self.describe_interrupt(interrupt)
            raise
        except Exception as err:
            # A rank that stopped (kill -9, out of memory, a lost node) surfaces here as whatever the
            # backend raises: named in one line with where the run was and where it resumes.
            stage = getattr(self, "_stage", "setup")
            where = {"setup": "before training started", "final": "in the final test"}.get(
                stage, f"during epoch {self.epoch + 1}")
            lost = dist.peer_lost(err, where, self._resume_advice())
            if lost is None:
                raise
            raise lost from err

    def _resume_advice(self) -> str:
        """What a rerun of the same command does from where the loop is."""
        stage = getattr(self, "_stage", "setup")
        saved = getattr(self, "_epochs_saved", 0)
        if stage == "final":
            return "rerun the same command: it skips training and only tests again"
        if saved > 0:
            return f"rerun the same command to resume from epoch {saved}"
        if stage == "setup":
            return "rerun the same command to resume"
        return "rerun the same command to start again (no epoch was completed)"

    def describe_interrupt(self, interrupt: RunInterrupted) -> None:
        """Say where the loop was and from which epoch a rerun resumes."""
        stage = getattr(self, "_stage", "setup")
        interrupt.advice = self._resume_advice()
        if stage == "setup":
            interrupt.where = "before training started"
            return
        if stage == "final":
            interrupt.where = f"after training, in the final test (all {self.max_epoch} epochs are saved)"
            return
        batch = getattr(self, "batch_idx", -1) + 1
        interrupt.where = f"at epoch {self.epoch + 1}, batch {batch}" if batch > 0 else (
            f"at epoch {self.epoch + 1}, before its first batch")

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def run_epoch(self) -> None:
        raise NotImplementedError

    def test(self, split: Optional[str] = None) -> Any:
        raise NotImplementedError

    def parse_batch_train(self, batch: Any) -> Any:
        raise NotImplementedError

    def parse_batch_test(self, batch: Any) -> Any:
        raise NotImplementedError

    def forward_backward(self, batch: Any) -> Dict[str, Any]:
        raise NotImplementedError

    def model_inference(self, input: torch.Tensor) -> Any:
        raise NotImplementedError

    def model_zero_grad(self, names: Names = None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names: Names = None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def reduce_gradients(self, names: Names = None) -> None:
        """Sum the gradients over ranks (a no-op in one process); ``forward_backward``'s loss must be
        this rank's share of the global loss (see ``distributed.all_reduce_gradients``)."""
        if dist.is_distributed():
            dist.all_reduce_gradients(p for name in self.get_model_names(names)
                                      for p in self._models[name].parameters())

    def model_backward_and_update(self, loss: torch.Tensor, names: Names = None) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.reduce_gradients(names)
        self.model_update(names)


# PREC values: "fp32"; "fp16" (CLIP's weights in half precision, no autocast, no loss scaling, as
# the lineage); "amp" (float16 autocast with a GradScaler); "bf16" (bfloat16 autocast: bfloat16
# has fp32's exponent range, so nothing overflows and no loss scaling is needed). Trainable
# tensors stay fp32 in every mode; only the frozen backbone and its activations change.
PRECISIONS = ("fp16", "fp32", "amp", "bf16")
AUTOCAST_DTYPES = {"amp": torch.float16, "bf16": torch.bfloat16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX-512-BF16 or AMX), which make bf16 pay."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_for(precision: str, device: torch.device) -> ContextManager[Any]:
    """float16 autocast for amp, bfloat16 for bf16, on ``device``; a no-op otherwise."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def resolve_precision(cfg: Any, device: torch.device, node_name: str = "") -> str:
    """``cfg.TRAINER[<node>].PREC`` (the node ``node_name``, else TRAINER.NAME's), "fp32" when the
    trainer has no such key. On CPU, fp16 and amp become fp32 unless the node's ``PREC_ON_CPU`` is
    true (then they run as on CUDA); bf16 runs on CPU as asked. Prints one line saying which
    precision runs and why."""
    name = node_name or cfg.TRAINER.NAME
    node = cfg.TRAINER.get(name) if name else None
    if not hasattr(node, "get"):
        node = None
    precision = node.get("PREC", "fp32") if node is not None else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(
            f'TRAINER.{name}.PREC must be "fp16", "fp32", "amp" or "bf16", got {precision!r}'
        )
    on_cpu = node.get("PREC_ON_CPU", False) if node is not None else False
    if device.type == "cpu" and precision in ("fp16", "amp"):
        if not on_cpu:
            print(
                f"Precision {precision} is not supported on CPU; using fp32 "
                f"(TRAINER.{name}.PREC_ON_CPU True runs {precision} on CPU)"
            )
            return "fp32"
        print(f"Precision {precision} on CPU, as TRAINER.{name}.PREC_ON_CPU asks")
    elif device.type == "cpu" and precision == "bf16":
        native = cpu_has_native_bf16()
        print(
            f"Precision bf16 on CPU (bfloat16 autocast, no loss scaling); this CPU "
            + ("has bfloat16 instructions" if native else "lacks bfloat16 instructions: expect it slower than fp32")
        )
    elif precision != "fp32":
        print(f"Precision {precision} on {device.type}")
    return precision


class SimpleTrainer(TrainerBase):
    """A trainer with a single data manager, evaluator and precision policy."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.time_created = time.time()
        self.check_cfg(cfg)
        dist.check_global_batch(cfg.DATALOADER.TRAIN_X.BATCH_SIZE)

        if torch.cuda.is_available() and cfg.USE_CUDA:
            # Under torchrun each rank runs on its node's GPU LOCAL_RANK.
            self.device = torch.device("cuda", dist.local_rank()) if dist.is_distributed() else torch.device("cuda")
        else:
            self.device = torch.device("cpu")
        self.precision = resolve_precision(cfg, self.device, self.node_name)
        self.scaler: Optional[torch.amp.GradScaler] = None
        if self.precision == "amp":
            self.scaler = torch.amp.GradScaler(self.device.type)

        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        # Set by --force, or by MMRL_FORCE=1 for lineage train.py files that have no such flag:
        # resume under another config, evaluate with another backbone.
        self.force = os.environ.get(FORCE_ENV, "") == "1"
        # Completed epochs of the model in use (trained, resumed or loaded): results.json's "epoch".
        self.model_epoch = 0
        # Files the run's config came from, recorded in results.json (train.py fills them in).
        self.config_files: Dict[str, str] = {}
        self._after_training = False

        self.cfg = cfg
        self.build_data_loader()
        # Rank 0 alone drew anything the data needed (a first few-shot split); every rank goes on
        # with its generator states, so all start from the same weights and sample the same order.
        dist.sync_random_state()
        self.build_model()
        for model in self._models.values():
            dist.broadcast_module(model)
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -float("inf")

    def check_cfg(self, cfg: Any) -> None:
        """Check the config before anything is built (``self.cfg`` is not set yet)."""
        pass

    # ---- what a checkpoint records, and the checks against it ------------------------------------
    def backbone_record(self) -> Dict[str, Any]:
        """How a checkpoint names the backbone it was trained on (trainers may add a fingerprint)."""
        return {"backbone": self.cfg.MODEL.BACKBONE.NAME}

    def checkpoint_record(self) -> Dict[str, Any]:
        return {"config": config_record(self.cfg), **self.backbone_record()}

    def check_checkpoint(self, checkpoint: Dict[str, Any], path: str, resuming: bool) -> None:
        self.check_checkpoint_backbone(checkpoint, path)
        if resuming:
            self.check_resumed_config(checkpoint, path)

    def check_checkpoint_backbone(self, checkpoint: Dict[str, Any], path: str) -> None:
        """Same-width backbones load each other's weights without an error and give wrong numbers."""
        mine = self.backbone_record()
        differ = [k for k, v in mine.items() if checkpoint.get(k) is not None and checkpoint[k] != v]
        if not differ:
            return
        what = ", ".join(f"{k} {checkpoint[k]!r} (this run: {mine[k]!r})" for k in differ)
        if self.force:
            print(f"WARNING: {path} was trained on another backbone: {what}; loading it anyway ({FORCE_HOW})")
            return
        raise ValueError(
            f'"{path}" was trained on another backbone: {what}. Use the backbone it was trained on '
            f"(MODEL.BACKBONE.NAME / MODEL.BACKBONE.PATH), or pass {FORCE_HINT} to load it anyway."
        )

    def check_resumed_config(self, checkpoint: Dict[str, Any], path: str) -> None:
        """A resume (or the rerun of a finished run) continues the checkpoint's training: under other
        method or optimisation values it would mix two configs, or report the old model as the new."""
        record = checkpoint.get("config")
        if record is None:
            print(f"Note: {path} records no config (an older checkpoint); resuming without comparing configs")
            return
        diffs = config_differences(record, self.cfg)
        if not diffs:
            return
        listed = "; ".join(f"{k}: {a!r} in the checkpoint, {b!r} now" for k, a, b in diffs[:8])
        more = f" (and {len(diffs) - 8} more)" if len(diffs) > 8 else ""
        if self.force:
            print(f"WARNING: resuming {path} under a different config ({FORCE_HOW}): {listed}{more}")
            return
        raise ValueError(
            f'"{path}" was trained with a different config: {listed}{more}. Use another --output-dir for '
            f"the new config, or pass {FORCE_HINT} to continue this checkpoint under the new values."
        )

    # ---- unreadable images ---------------------------------------------------------------------
    def readable_batches(self, loader: Any) -> Any:
        """The loader's batches; one holding an unreadable image stops the run naming the file, or,
        with DATALOADER.SKIP_UNREADABLE, goes on without it (the image is listed at the end)."""
        from ..data.data_manager import UNREADABLE_KEY, UnreadableImage

        skipped: List[str] = self.__dict__.setdefault("skipped_images", [])
        for batch in loader:
            bad = batch.pop(UNREADABLE_KEY, None) if isinstance(batch, dict) else None
            if bad:
                if not self.cfg.DATALOADER.SKIP_UNREADABLE:
                    raise UnreadableImage(
                        f"{bad[0]}. Replace or remove the file, or set DATALOADER.SKIP_UNREADABLE True to "
                        "skip unreadable images; then rerun the same command (it resumes)."
                    )
                for message in bad:
                    if message not in skipped:
                        skipped.append(message)
                        print(f"Skipping an unreadable image: {message}")
                if "img" not in batch:
                    if dist.is_distributed() and loader is self.train_loader_x:
                        # The other ranks train on their slices of this global batch and then wait in
                        # the gradient sum for this rank's: skipping the step here would hold them
                        # until DISTRIBUTED.TIMEOUT.
                        raise UnreadableImage(
                            f"every image of this rank's slice of a training batch is unreadable ({bad[0]}); "
                            "a distributed run cannot skip a whole slice: replace or remove the files, or "
                            "run with fewer processes; then rerun the same command (it resumes)."
                        )
                    continue
            yield batch
            # Dropped before the loader builds the next batch, so that two are never held at once
            # (a test batch of 250 images is 150 MB in fp32, and collating the next needs as much again).
            del batch

    def report_skipped_images(self) -> None:
        skipped = self.__dict__.get("skipped_images") or []
        if skipped:
            print(f"Skipped {len(skipped)} unreadable image(s) (DATALOADER.SKIP_UNREADABLE):")
            for message in skipped:
                print(f"  {message}")

    def check_resume_folder(self, directory: str) -> None:
        """An explicit --resume that finds nothing to resume must not quietly train from scratch."""
        missing = [n for n in self.get_model_names() if not osp.isfile(osp.join(directory, n, POINTER_FILE))]
        if missing:
            raise FileNotFoundError(
                f'--resume "{directory}" holds no checkpoint to resume from (no '
                f'"{osp.join(directory, missing[0], POINTER_FILE)}"); pass the output folder of a training run'
            )

    def remove_stale_temporaries(self) -> None:
        """Temporary files of a save that was killed half-way: never complete, safe to delete."""
        for name in self.get_model_names():
            for path in remove_stale_temporaries(osp.join(self.output_dir, name)):
                print(f"Removed {path}, left by a save that was interrupted")

    def autocast(self) -> ContextManager[Any]:
        return autocast_for(self.precision, self.device)

    def model_backward_and_update(self, loss: torch.Tensor, names: Names = None) -> None:
        if self.scaler is None:
            super().model_backward_and_update(loss, names)
            return
        self.model_zero_grad(names)
        self.scaler.scale(loss).backward()
        self.reduce_gradients(names)
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self.scaler.step(self._optims[name])
        self.scaler.update()

    def build_data_loader(self) -> None:
        """Build the loaders with Dassl's DataManager."""
        from ..data import DataManager

        # Rank 0 writes the split and few-shot caches; the other ranks then read them.
        with dist.main_process_first():
            dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u  # optional, can be None
        self.val_loader = dm.val_loader  # optional, can be None
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname  # dict {label: classname}
        self.dm = dm

    def build_model(self) -> None:
        raise NotImplementedError(
            f"{type(self).__name__}.build_model() must build the model, its "
            "optimizer and scheduler and call self.register_model(...)"
        )

    def train(self) -> None:  # type: ignore[override]
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self) -> None:
        directory = self.cfg.OUTPUT_DIR
        if self.cfg.RESUME:
            directory = self.cfg.RESUME
        if dist.is_main_process():
            self.remove_stale_temporaries()
        dist.barrier()
        if self.cfg.RESUME:
            self.check_resume_folder(self.cfg.RESUME)
        self.start_epoch = self.model_epoch = self.resume_model_if_exist(directory)
        if dist.is_main_process():
            # After the resume check, so a refused resume leaves the record of the checkpoint in place.
            write_config_record(self.cfg)
            writer_dir = osp.join(self.output_dir, "tensorboard")
            mkdir_if_missing(writer_dir)
            self.init_writer(writer_dir)

        self.time_start = time.time()

    def after_train(self) -> None:
        print("Finish training")

        do_test = not self.cfg.TEST.NO_TEST
        if do_test:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            self._after_training = True
            self.test()

        elapsed = round(time.time() - self.time_start)
        elapsed = str(datetime.timedelta(seconds=elapsed))
        print(f"Elapsed: {elapsed}")

        self.close_writer()

    def is_scheduled_save(self, epoch_count: int) -> bool:
        """Whether Dassl keeps the checkpoint written after ``epoch_count`` epochs."""
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        meet_freq = epoch_count % freq == 0 if freq > 0 else False
        return meet_freq or epoch_count == self.max_epoch

    def after_epoch(self) -> None:
        epoch_count = self.model_epoch = self.epoch + 1
        do_test = not self.cfg.TEST.NO_TEST

        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            is_best = curr_result > self.best_result
            if is_best:
                self.best_result = curr_result
                self.save_model(
                    self.epoch,
                    self.output_dir,
                    val_result=curr_result,
                    model_name="model-best.pth.tar",
                )

        # Every epoch is saved so an interrupted run loses no work; only the
        # files Dassl would write are kept once the next one is complete.
        scheduled = self.is_scheduled_save(epoch_count)
        self.save_model(self.epoch, self.output_dir, verbose=scheduled)
        self._epochs_saved = epoch_count
        previous = epoch_count - 1
        if previous >= 1 and not self.is_scheduled_save(previous) and dist.is_main_process():
            for name in self.get_model_names():
                stale = osp.join(self.output_dir, name, epoch_file_name(previous))
                if osp.isfile(stale):
                    os.remove(stale)

    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        """Evaluate on ``split`` (default TEST.SPLIT; "val" falls back to test
        when there is no val loader); returns the first metric (accuracy)."""
        self.set_model_mode("eval")
        self.evaluator.reset()

        if split is None:
            split = self.cfg.TEST.SPLIT
        # A validation pass that falls back to the test loader is no test result.
        is_test = split == "test"

        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"
            data_loader = self.test_loader

        context = self.evaluation_context()
        print(f"Evaluate on the *{split}* set")

        # Distributed: each rank scores its contiguous shard; the outputs, gathered in rank order,
        # are the dataset's order, and the evaluator sees what it sees in one process.
        outputs: List[torch.Tensor] = []
        labels: List[torch.Tensor] = []
        bar_off = None if dist.is_main_process() else True
        # The bar is updated by hand: iterating through tqdm would keep each batch alive while the next is built.
        bar = tqdm(total=len(data_loader), file=sys.stderr, disable=bar_off, desc=split)
        for batch in self.readable_batches(data_loader):
            input, label = self.parse_batch_test(batch)
            if context is None:
                output = self.model_inference(input)
            else:
                output = self.model_inference(input, context)
            if dist.is_distributed():
                outputs.append(output)
                labels.append(label)
            else:
                self.evaluator.process(output, label)
            del batch, input, output
            bar.update(1)
        bar.close()
        if dist.is_distributed():
            self.evaluator.process(dist.gather_in_order(torch.cat(outputs)), dist.gather_in_order(torch.cat(labels)))

        results = self.evaluator.evaluate()
        self.report_skipped_images()

        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        if is_test and dist.is_main_process():
            self.write_results(results)

        return list(results.values())[0]

    def evaluation_context(self) -> Any:
        """What every batch of one evaluation shares (e.g. text features computed once for it),
        built once per :meth:`test` in eval mode and handed to ``model_inference(input,
        context)``; None, the default, keeps Dassl's ``model_inference(input)``."""
        return None

    def result_extra(self) -> Dict[str, Any]:
        """Entries a trainer adds to results.json (e.g. which logits were scored)."""
        return {}

    def write_results(self, results: Dict[str, float]) -> None:
        """``OUTPUT_DIR/results.json``: the test result with what produced it (see mmrl.results)."""
        cfg = self.cfg
        log = getattr(getattr(sys.stdout, "file", None), "name", None)
        record: Dict[str, Any] = {
            "split": "test",
            "total": self.evaluator.total,
            "correct": self.evaluator.correct,
            "accuracy": results["accuracy"],
            "error": results["error_rate"],
            "macro_f1": results["macro_f1"],
        }
        if "perclass_accuracy" in results:
            record["average"] = results["perclass_accuracy"]  # the "* average" line of per-class results
        record.update({
            "task": cfg.get("TASK"),
            "logits": None,
            "epoch": self.model_epoch,
            "after_training": self._after_training,
            "trainer": cfg.TRAINER.NAME,
            "dataset": cfg.DATASET.NAME,
            "subsample": cfg.DATASET.get("SUBSAMPLE_CLASSES"),
            "shots": cfg.DATASET.NUM_SHOTS,
            "seed": cfg.SEED,
            "config_file": self.config_files.get("config_file", ""),
            "dataset_config_file": self.config_files.get("dataset_config_file", ""),
            "backbone": cfg.MODEL.BACKBONE.NAME,
            "wall_time_s": round(time.time() - self.time_created, 3),
            "finished_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "log": osp.basename(log) if log and osp.dirname(osp.abspath(log)) == osp.abspath(self.output_dir) else None,
        })
        record.update(self.result_extra())
        write_record(self.output_dir, record)

    def model_inference(self, input: torch.Tensor) -> Any:
        return self.model(input)

    def parse_batch_test(self, batch: Dict[str, Any]) -> Any:
        input = batch["img"].to(self.device)
        label = batch["label"].to(self.device)
        return input, label

    def get_current_lr(self, names: Names = None) -> float:
        names = self.get_model_names(names)
        name = names[0]
        return self._optims[name].param_groups[0]["lr"]


class TrainerX(SimpleTrainer):
    """Trains on labelled data only (``train_loader_x``)."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        set_loader_epoch(self.train_loader_x, self.epoch)
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)
        print_freq = self.cfg.TRAIN.PRINT_FREQ

        bar = tqdm(
            self.readable_batches(self.train_loader_x),
            total=self.num_batches,
            file=sys.stderr,
            disable=None if dist.is_main_process() else True,
            leave=False,
            desc=f"epoch {self.epoch + 1}/{self.max_epoch}",
        )
        end = time.time()
        for self.batch_idx, batch in enumerate(bar):
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)

            meet_freq = (self.batch_idx + 1) % print_freq == 0
            only_few_batches = self.num_batches < print_freq
            if meet_freq or only_few_batches:
                nb_remain = 0
                nb_remain += self.num_batches - self.batch_idx - 1
                nb_remain += (self.max_epoch - self.epoch - 1) * self.num_batches
                eta_seconds = batch_time.avg * nb_remain
                eta = str(datetime.timedelta(seconds=int(eta_seconds)))

                info = []
                info += [f"epoch [{self.epoch + 1}/{self.max_epoch}]"]
                info += [f"batch [{self.batch_idx + 1}/{self.num_batches}]"]
                info += [f"time {batch_time.val:.3f} ({batch_time.avg:.3f})"]
                info += [f"data {data_time.val:.3f} ({data_time.avg:.3f})"]
                info += [f"{losses}"]
                info += [f"lr {self.get_current_lr():.4e}"]
                info += [f"eta {eta}"]
                print(" ".join(info))

            n_iter = self.epoch * self.num_batches + self.batch_idx
            for name, meter in losses.meters.items():
                self.write_scalar("train/" + name, meter.avg, n_iter)
            self.write_scalar("train/lr", self.get_current_lr(), n_iter)

            end = time.time()
        bar.close()

    def parse_batch_train(self, batch: Dict[str, Any]) -> Any:
        input = batch["img"].to(self.device)
        label = batch["label"].to(self.device)
        domain = batch["domain"].to(self.device)
        return input, label, domain
