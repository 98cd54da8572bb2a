"""Assembling a run's configuration from the command line, in the lineage's order.

Order (later steps win):
1. the engine's defaults, plus the keys the trainer being built declares (its ``add_config``);
2. the dataset YAML (``--dataset-config-file``);
3. the method YAML (``--config-file``), with its ``_BASE_`` files under it;
4. the command-line arguments (``--root``, ``--seed``, ``--trainer`` ...);
5. the trainer's per-dataset values, ``dataset_overrides.yaml`` next to the method's config
   files, chosen by TASK and DATASET.NAME;
6. the trailing ``KEY VALUE`` opts;
then the config is frozen.
"""
import argparse
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

from mmrl.dassl.config import (
    CfgNode,
    get_cfg_default,
    load_yaml_chain,
    merge_from_file_checked,
    merge_from_list_checked,
    merge_mapping_checked,
)
from mmrl.dassl.config.checked import yaml_error_message
from mmrl.dassl.data.datasets import DATASET_REGISTRY
from mmrl.dassl.engine import TRAINER_REGISTRY
from mmrl.dassl.utils.registry import closest_name, did_you_mean

OVERRIDES_FILE = "dataset_overrides.yaml"
TASKS = ("B2N", "FS", "CD")


def _registered(registry: Any, name: str, package: str) -> bool:
    """Whether ``name`` is registered, importing the repository's ``package`` (trainers/,
    datasets/, which register themselves) when it is not yet."""
    if name not in registry:
        try:
            importlib.import_module(package)
        except ImportError:
            pass
    return name in registry


def trainer_class(name: str) -> Optional[type]:
    """The registered trainer class called ``name`` (None for no name)."""
    if not name:
        return None
    if not _registered(TRAINER_REGISTRY, name, "trainers"):
        names = TRAINER_REGISTRY.registered_names()
        raise ValueError(f"--trainer {name!r} is not a registered trainer; did you mean "
                         f"{closest_name(name, names)!r}? Registered: {sorted(names)}")
    return TRAINER_REGISTRY.get(name)


def default_cfg(trainer: str = "") -> CfgNode:
    """The engine's defaults plus the keys of ``trainer`` (step 1 of the assembly)."""
    cfg = get_cfg_default()
    cls = trainer_class(trainer)
    if cls is not None:
        cls.add_config(cfg)
    return cfg


def task_of(cfg, opts: List[str]) -> str:
    """TASK as it will be once the opts are merged (the opts come after the overrides)."""
    task = cfg.TASK
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "TASK":
            task = value
    if task not in TASKS:
        raise ValueError(f"TASK must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def overrides_path(config_files: List[str]) -> Optional[str]:
    """``dataset_overrides.yaml`` in the folder of the first of the method's config files (the
    one given, then its ``_BASE_`` files) that has one."""
    for path in config_files:
        candidate = os.path.join(os.path.dirname(os.path.abspath(path)), OVERRIDES_FILE)
        if os.path.isfile(candidate):
            return candidate
    return None


def dataset_values(path: str, trainer: str, task: str, dataset: str) -> Dict[str, Any]:
    """The per-dataset values of ``path`` for a task and dataset, by short key (``REG_WEIGHT``).

    The file maps TASK -> DATASET.NAME -> {KEY: VALUE}; a task or dataset name that does not
    exist is an error naming the file and the closest valid name.
    """
    with open(path, encoding="utf-8") as f:
        try:
            table = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ValueError(yaml_error_message(path, e)) from None
    if not isinstance(table, dict):
        raise ValueError(f'Per-dataset values "{path}" must map TASK -> DATASET.NAME -> {{KEY: VALUE}}')
    for name, datasets in table.items():
        if name not in TASKS:
            raise ValueError(f'In per-dataset values "{path}": unknown TASK "{name}".{did_you_mean(str(name), list(TASKS))}')
        for ds in datasets or {}:
            if not _registered(DATASET_REGISTRY, ds, "datasets"):
                names = DATASET_REGISTRY.registered_names()
                raise ValueError(f'In per-dataset values "{path}": "{ds}" ({name}) is not a registered '
                                 f"dataset.{did_you_mean(str(ds), names)}")
    values = (table.get(task) or {}).get(dataset) or {}
    if not isinstance(values, dict):
        raise ValueError(f'In per-dataset values "{path}": {task} / {dataset} must map KEY: VALUE')
    return dict(values)


@dataclass(frozen=True)
class AssembledConfig:
    """A run's frozen config and the per-dataset values that took effect in it."""

    cfg: CfgNode
    # Full key -> value, in the table's order; None when the trainer has no per-dataset values.
    dataset_values: Optional[Dict[str, Any]] = field(default=None)

    def dataset_values_line(self) -> Optional[str]:
        """``Per-dataset values for <Dataset> (<TASK>): KEY=VALUE ...`` (None without a table)."""
        if self.dataset_values is None:
            return None
        applied = " ".join(f"{k}={v}" for k, v in self.dataset_values.items()) or "none"
        return f"Per-dataset values for {self.cfg.DATASET.NAME} ({self.cfg.TASK}): {applied}"


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


def _merge_file(cfg, path: str, flag: str) -> List[str]:
    try:
        return merge_from_file_checked(cfg, path)
    except (KeyError, AssertionError) as err:
        raise ValueError(f"{flag}: {err.args[0] if err.args else err}") from None
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"{flag}: {err}") from None


def check_opts(opts: List[str], parser: Optional[argparse.ArgumentParser] = None) -> None:
    """The trailing opts are KEY VALUE pairs: a ``--flag`` among them was meant for the parser."""
    parser = parser or build_parser()
    known = {s for action in parser._actions for s in action.option_strings}
    for i, token in enumerate(opts):
        flag = str(token).split("=", 1)[0]
        if flag in known:
            raise ValueError(
                f"the flag {flag} comes after the KEY VALUE options, where it is read as a config key; "
                f"move it before them (e.g. train.py ... {flag} {' '.join(map(str, opts[:2]))} ...)"
            )
        if str(token).startswith("--") and i % 2 == 0:
            raise ValueError(f"unknown flag {token} among the KEY VALUE options; see train.py --help")


def check_required(cfg, args: argparse.Namespace) -> None:
    """A run needs a trainer and a backbone; say which argument gives them."""
    if not cfg.TRAINER.NAME:
        raise ValueError("--trainer is missing: name the trainer to run (e.g. --trainer MMRL)")
    if not cfg.MODEL.BACKBONE.NAME:
        where = (f"{args.config_file} sets no MODEL.BACKBONE.NAME" if args.config_file
                 else "--config-file is missing")
        raise ValueError(
            f"{where}: pass the method's config (e.g. --config-file configs/trainers/{cfg.TRAINER.NAME}/vit_b16.yaml) "
            "or name a backbone with --backbone"
        )


def check_not_empty(args: argparse.Namespace) -> None:
    """An empty YAML given as a config file is a mistake (a file cut short, a wrong path): said at
    once, not through a symptom further on (a missing backbone or overrides file)."""
    import yaml

    for flag, path in (("--config-file", args.config_file), ("--dataset-config-file", args.dataset_config_file)):
        if not path or not os.path.isfile(path):
            continue  # a missing file is reported where it is read
        with open(path, encoding="utf-8", errors="replace") as f:
            try:
                content = yaml.safe_load(f)
            except yaml.YAMLError:
                continue  # its syntax error is reported, with the line, where it is read
        if content is None or content == {}:
            raise ValueError(f"{flag} {path} is empty: give the YAML with the "
                             f"{'method' if flag == '--config-file' else 'dataset'}'s settings "
                             f"(e.g. configs/{'trainers/MMRL/vit_b16' if flag == '--config-file' else 'datasets/dtd'}.yaml)")


def _trainer_name(args: argparse.Namespace) -> str:
    """--trainer, else the TRAINER.NAME the method YAML sets: the trainer whose keys are added."""
    if args.trainer or not args.config_file:
        return args.trainer
    try:
        merged, _ = load_yaml_chain(args.config_file)
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"--config-file: {err}") from None
    name = (merged.get("TRAINER") or {}).get("NAME", "")
    return name if isinstance(name, str) else ""


def assemble_config(args: argparse.Namespace) -> AssembledConfig:
    """The run's config, assembled in the order of this module's docstring."""
    check_opts(list(args.opts or []))
    check_not_empty(args)
    name = _trainer_name(args)
    cls = trainer_class(name)
    cfg = default_cfg(name)
    if args.dataset_config_file:
        _merge_file(cfg, args.dataset_config_file, "--dataset-config-file")
    config_files: List[str] = []
    if args.config_file:
        missing = (f"--trainer is missing and {args.config_file} sets no TRAINER.NAME: name the trainer to run "
                   "(e.g. --trainer MMRL)")
        try:
            config_files = _merge_file(cfg, args.config_file, "--config-file")
        except ValueError as err:
            # Without a trainer its keys are not declared: the missing flag is the error, not the key.
            if not name and 'unknown config key "TRAINER.' in str(err):
                raise ValueError(missing) from None
            raise
        # A method YAML that states only the protocol (its method values are the trainer's defaults)
        # merges without a trainer; the flag is still what is missing.
        if not name:
            raise ValueError(missing)
    reset_cfg(cfg, args)
    opts = list(args.opts or [])
    task = task_of(cfg, opts)

    applied: Optional[Dict[str, Any]] = None
    if cls is not None and cls.per_dataset_values and config_files:
        path = overrides_path(config_files)
        if path is None:
            raise FileNotFoundError(
                f"--config-file: trainer {name} takes its per-dataset values from a {OVERRIDES_FILE} next to "
                f"its config files, and there is none in {os.path.dirname(os.path.abspath(config_files[0]))}. "
                f"Copy configs/trainers/{name}/{OVERRIDES_FILE} there, or inherit a config of that folder "
                "with _BASE_."
            )
        values = dataset_values(path, name, task, cfg.DATASET.NAME)
        node = cls.node_name or name
        try:
            merge_mapping_checked(cfg, {"TRAINER": {node: values}},
                                  f'In per-dataset values "{path}" ({task} / {cfg.DATASET.NAME})')
        except (KeyError, AssertionError) as err:
            raise ValueError(err.args[0] if err.args else str(err)) from None
        set_by_opts = set(opts[0::2])
        applied = {f"TRAINER.{node}.{k}": v for k, v in values.items() if f"TRAINER.{node}.{k}" not in set_by_opts}
    try:
        merge_from_list_checked(cfg, opts)
    except (KeyError, AssertionError, ValueError) as err:
        raise ValueError(err.args[0] if err.args else str(err)) from None
    cfg.freeze()
    return AssembledConfig(cfg, applied)


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """The run's frozen config (the lineage's name for :func:`assemble_config`)."""
    return assemble_config(args).cfg


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
    p.add_argument("--force", action="store_true",
                   help="resume although the checkpoint was trained with a different config, or evaluate a "
                        "checkpoint with a different backbone than it records")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                   help="modify config options using the command-line (KEY VALUE pairs, e.g. TASK B2N)")
    return p
