"""Config merges whose errors name the file, the key and the closest valid key.

A YAML file may inherit another: ``_BASE_: vit_b16.yaml`` (a path relative to the file, or a
list of them) merges the base first, so a file states only how it differs from its base.
"""
from __future__ import annotations

import os.path as osp
import re
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import yaml
from yacs.config import CfgNode as CN

from ..utils.registry import did_you_mean

BASE_KEY = "_BASE_"


def yaml_error_message(path: str, err: "yaml.YAMLError") -> str:
    """A YAML syntax error as 'file, line L, column C: problem'."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f'YAML syntax error in "{path}"{where}: {detail}. Fix the file (indentation, brackets, quotes).'


def all_keys(cfg: CN, prefix: str = "") -> List[str]:
    """Every key of ``cfg`` in dotted form, nodes and leaves alike."""
    keys = []
    for k, v in cfg.items():
        full = prefix + k
        keys.append(full)
        if isinstance(v, CN):
            keys.extend(all_keys(v, full + "."))
    return keys


_KEY_PATTERNS = (
    re.compile(r"Non-existent config key: (\S+)"),
    re.compile(r"Non-existent key: (\S+)"),
    re.compile(r"for config key: (\S+)"),
)


def _failed_key(err: BaseException) -> str:
    text = str(err.args[0]) if err.args else str(err)
    for pat in _KEY_PATTERNS:
        m = pat.search(text)
        if m:
            return m.group(1)
    return ""


def _explain(cfg: CN, err: BaseException, where: str) -> str:
    text = str(err.args[0]) if err.args else str(err)
    key = _failed_key(err)
    if "Non-existent" in text:
        return f'{where}: unknown config key "{key}".{did_you_mean(key, all_keys(cfg), cutoff=0.5)} ({text})'
    if "Type mismatch" in text:
        return (
            f"{where}: {text}. Write the value with the default's type "
            "(e.g. 1.0, not 1, for a float key)."
        )
    return f"{where}: {text}"


def _read_yaml(path: str) -> Dict[str, Any]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file "{path}" does not exist')
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(yaml_error_message(path, e)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f'Config file "{path}" must hold a mapping of keys, not a {type(data).__name__}')
    return data


def _deep_update(base: Dict[str, Any], child: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml_chain(path: str, _seen: Tuple[str, ...] = ()) -> Tuple[Dict[str, Any], List[Tuple[str, Dict[str, Any]]]]:
    """The mapping of a YAML file with its ``_BASE_`` files merged under it, and every file of the
    chain with its own mapping (``path`` first, then its bases, depth first)."""
    real = osp.realpath(path)
    if real in _seen:
        raise ValueError(f'Config file "{path}" inherits itself through {BASE_KEY}')
    own = _read_yaml(path)
    bases = own.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ValueError(f'Config file "{path}": {BASE_KEY} must be a file name or a list of file names')
    merged: Dict[str, Any] = {}
    chain: List[Tuple[str, Dict[str, Any]]] = [(path, own)]
    for base in bases:
        base_path = base if osp.isabs(base) else osp.join(osp.dirname(path), base)
        if not osp.isfile(base_path):
            raise FileNotFoundError(f'Config file "{path}": its {BASE_KEY} "{base_path}" does not exist')
        base_data, base_chain = load_yaml_chain(base_path, _seen + (real,))
        merged = _deep_update(merged, base_data)
        chain += base_chain
    return _deep_update(merged, own), chain


def _holds_key(mapping: Mapping[str, Any], dotted: str) -> bool:
    node: Any = mapping
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def merge_mapping_checked(cfg: CN, mapping: Mapping[str, Any], where: str,
                          origin: Any = None) -> None:
    """Merge a nested mapping into ``cfg`` as yacs merges a YAML file (same decoding and type
    checks), with errors that start with ``where`` and name the key and the closest valid one.
    ``origin(key)``, when given, returns the ``where`` for a failing key instead.

    Keeps the exception types of yacs (KeyError for unknown keys, ValueError for a type
    mismatch).
    """
    try:
        cfg.merge_from_other_cfg(CN(dict(mapping)))
    except (KeyError, ValueError, AssertionError) as e:
        place = origin(_failed_key(e)) if origin is not None else where
        raise type(e)(_explain(cfg, e, place)) from None


def merge_from_file_checked(cfg: CN, path: str) -> List[str]:
    """``cfg.merge_from_file(path)``, with ``_BASE_`` inheritance and errors that name the file
    that holds the offending key and the key. Returns the files of the chain, ``path`` first."""
    merged, chain = load_yaml_chain(path)

    def origin(key: str) -> str:
        found = next((p for p, own in chain if key and _holds_key(own, key)), path)
        if found == path:
            return f'In config file "{path}"'
        return f'In config file "{found}" (a {BASE_KEY} of "{path}")'

    merge_mapping_checked(cfg, merged, f'In config file "{path}"', origin)
    return [p for p, _ in chain]


def merge_from_list_checked(cfg: CN, opts: Sequence[Any]) -> None:
    """``cfg.merge_from_list(opts)`` with errors that name the option and the
    closest existing key."""
    if len(opts) % 2 != 0:
        raise ValueError(
            f"Command-line options must be KEY VALUE pairs, got an odd count "
            f"({len(opts)}): {list(opts)}"
        )
    try:
        cfg.merge_from_list(list(opts))
    except AssertionError as e:
        raise AssertionError(_explain(cfg, e, "In command-line options")) from None
    except ValueError as e:
        raise ValueError(_explain(cfg, e, "In command-line options")) from None
    except KeyError as e:
        raise KeyError(_explain(cfg, e, "In command-line options")) from None
