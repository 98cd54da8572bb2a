"""The record of a run's resolved config: written to ``OUTPUT_DIR/config.yaml`` and stored in every
checkpoint (one serialisation, so the two can be compared and reloaded alike).

The record is yacs's YAML dump. Reloading it on top of the defaults (``merge_from_file``) gives a
config equal to the one recorded; tuples come back as tuples because yacs coerces each value to
its default's type.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from yacs.config import CfgNode as CN

from mmrl.files import atomic_write

CONFIG_RECORD_FILE = "config.yaml"

# Keys that say where or how a run works, not what it trains: a resume may change them freely
# (a moved data root, another worker count, a different test split...). A key ending in "." names
# a whole node.
RUN_ONLY_KEYS: Tuple[str, ...] = (
    "OUTPUT_DIR",
    "RESUME",
    "VERBOSE",
    "USE_CUDA",
    "DATASET.ROOT",
    "DATASET.CACHE_DIR",
    "DATALOADER.NUM_WORKERS",
    "DATALOADER.SKIP_UNREADABLE",
    "MODEL.BACKBONE.PATH",
    "TRAIN.PRINT_FREQ",
    "TRAIN.CHECKPOINT_FREQ",
    "TEST.",
)


def config_record(cfg: CN) -> str:
    """The resolved config as YAML text (what ``config.yaml`` holds and checkpoints store)."""
    return cfg.dump()


def write_config_record(cfg: CN, output_dir: Optional[str] = None) -> str:
    """Write ``config.yaml`` into ``output_dir`` (default ``cfg.OUTPUT_DIR``); returns its path."""
    path = osp.join(output_dir or cfg.OUTPUT_DIR, CONFIG_RECORD_FILE)
    text = config_record(cfg)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def load_config_record(record: str, base: CN) -> CN:
    """A config equal to the recorded one: ``record`` (YAML text or a file path) merged onto a copy
    of ``base`` (the defaults the run was built from), frozen."""
    text = record
    if "\n" not in record and osp.isfile(record):
        with open(record, encoding="utf-8") as f:
            text = f.read()
    cfg = base.clone()
    cfg.defrost()
    cfg.merge_from_other_cfg(CN.load_cfg(text))
    cfg.freeze()
    return cfg


def _flatten(node: Any, prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in node.items():
        full = prefix + key
        if isinstance(value, dict):
            out.update(_flatten(value, full + "."))
        else:
            # A tuple dumps as a list: compare them alike.
            out[full] = list(value) if isinstance(value, tuple) else value
    return out


def _is_run_only(key: str, ignored: Sequence[str]) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in ignored)


def config_differences(
    record: str, cfg: CN, ignored: Sequence[str] = RUN_ONLY_KEYS
) -> List[Tuple[str, Any, Any]]:
    """``(key, recorded value, current value)`` for every key, outside ``ignored``, whose value in
    the recorded config differs from ``cfg`` (a key missing on one side shows as None)."""
    recorded = _flatten(yaml.safe_load(record) or {})
    current = _flatten(cfg)
    diffs = []
    for key in sorted(set(recorded) | set(current)):
        if _is_run_only(key, ignored):
            continue
        a, b = recorded.get(key), current.get(key)
        if a != b:
            diffs.append((key, a, b))
    return diffs
