"""Assembling a run's configuration from the command line, in the lineage's order.

Order (later steps win):
1. the engine's defaults (every key the lineage uses, plus ours);
2. the dataset YAML (``--dataset-config-file``);
3. the method YAML (``--config-file``);
4. the command-line arguments (``--root``, ``--seed``, ``--trainer`` ...);
5. the trainer's per-dataset values, ``configs/trainers/<TRAINER>/dataset_overrides.yaml``,
   chosen by TASK and DATASET.NAME;
6. the trailing ``KEY VALUE`` opts;
then the config is frozen.
"""
import argparse
import os
from typing import Any, Dict, List, Optional

import yaml

from mmrl.dassl.config import get_cfg_default, merge_from_file_checked, merge_from_list_checked

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERRIDES_FILE = "dataset_overrides.yaml"
TASKS = ("B2N", "FS", "CD")


def overrides_path(trainer: str, configs_dir: Optional[str] = None) -> str:
    configs_dir = configs_dir or os.path.join(REPO_ROOT, "configs")
    return os.path.join(configs_dir, "trainers", trainer, OVERRIDES_FILE)


def task_of(cfg, opts: List[str]) -> str:
    """TASK as it will be once the opts are merged (the opts come after the overrides)."""
    task = cfg.TASK
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "TASK":
            task = value
    if task not in TASKS:
        raise ValueError(f"TASK must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def dataset_overrides(trainer: str, task: str, dataset: str, path: Optional[str] = None) -> List[Any]:
    """The flat ``[KEY, VALUE, ...]`` list of per-dataset values for a trainer, task and dataset.

    A trainer without an overrides file, or a dataset missing from its table, gets none.
    """
    path = path or overrides_path(trainer)
    if not trainer or not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        table: Dict[str, Dict[str, Dict[str, Any]]] = yaml.safe_load(f) or {}
    values = (table.get(task) or {}).get(dataset) or {}
    flat: List[Any] = []
    for key, value in values.items():
        flat += [f"TRAINER.{trainer}.{key}", value]
    return flat


def reset_cfg(cfg, args: argparse.Namespace) -> None:
    """Copy the command-line arguments onto the config (only those given)."""
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    # Unlike the lineage (whose default of -1 always overwrote SEED and ignored --seed 0), a seed is
    # taken from the command line exactly when one is given.
    if args.seed is not None:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head
    if args.train_epoch:
        cfg.OPTIM.MAX_EPOCH = args.train_epoch


def _merge_file(cfg, path: str, flag: str) -> None:
    try:
        merge_from_file_checked(cfg, path)
    except (KeyError, AssertionError) as err:
        raise ValueError(f"{flag}: {err.args[0] if err.args else err}") from None
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"{flag}: {err}") from None


def setup_cfg(args: argparse.Namespace):
    cfg = get_cfg_default()
    if args.dataset_config_file:
        _merge_file(cfg, args.dataset_config_file, "--dataset-config-file")
    if args.config_file:
        _merge_file(cfg, args.config_file, "--config-file")
    reset_cfg(cfg, args)
    opts = list(args.opts or [])
    task = task_of(cfg, opts)
    cfg.merge_from_list(dataset_overrides(cfg.TRAINER.NAME, task, cfg.DATASET.NAME))
    try:
        merge_from_list_checked(cfg, opts)
    except (KeyError, AssertionError, ValueError) as err:
        raise ValueError(err.args[0] if err.args else str(err)) from None
    cfg.freeze()
    return cfg


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train or evaluate a trainer (MMRL, MMRLpp, ZeroshotCLIP, ...).")
    p.add_argument("--root", type=str, default="", help="path to the datasets folder (DATASET.ROOT)")
    p.add_argument("--output-dir", type=str, default="", help="output folder (OUTPUT_DIR)")
    p.add_argument("--resume", type=str, default="", help="checkpoint folder to resume training from (RESUME)")
    p.add_argument("--seed", type=int, default=None, help="random seed; >= 0 fixes it")
    p.add_argument("--source-domains", type=str, nargs="+", help="source domains (domain adaptation/generalisation)")
    p.add_argument("--target-domains", type=str, nargs="+", help="target domains (domain adaptation/generalisation)")
    p.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods (INPUT.TRANSFORMS)")
    p.add_argument("--config-file", type=str, default="", help="method config file")
    p.add_argument("--dataset-config-file", type=str, default="", help="dataset config file")
    p.add_argument("--trainer", type=str, default="", help="name of trainer")
    p.add_argument("--backbone", type=str, default="", help="name of CNN/CLIP backbone")
    p.add_argument("--head", type=str, default="", help="name of head")
    p.add_argument("--eval-only", action="store_true", help="evaluation only")
    p.add_argument("--model-dir", type=str, default="", help="load model from this directory for eval-only mode")
    p.add_argument("--train-epoch", type=int, default=None, help="OPTIM.MAX_EPOCH")
    p.add_argument("--load-epoch", type=int, default=None, help="load model weights at this epoch for evaluation")
    p.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                   help="modify config options using the command-line (KEY VALUE pairs, e.g. TASK B2N)")
    return p
