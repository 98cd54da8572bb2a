"""Config merges whose errors name the file, the key and the closest valid key."""
from __future__ import annotations

import difflib
import os.path as osp
import re
from typing import Any, List, Sequence

from yacs.config import CfgNode as CN


def all_keys(cfg: CN, prefix: str = "") -> List[str]:
    """Every key of ``cfg`` in dotted form, nodes and leaves alike."""
    keys = []
    for k, v in cfg.items():
        full = prefix + k
        keys.append(full)
        if isinstance(v, CN):
            keys.extend(all_keys(v, full + "."))
    return keys


def _suggest(cfg: CN, key: str) -> str:
    close = difflib.get_close_matches(key, all_keys(cfg), n=1, cutoff=0.5)
    return f' Did you mean "{close[0]}"?' if close else ""


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
        return f'{where}: unknown config key "{key}".{_suggest(cfg, key)} ({text})'
    if "Type mismatch" in text:
        return (
            f"{where}: {text}. Write the value with the default's type "
            "(e.g. 1.0, not 1, for a float key)."
        )
    return f"{where}: {text}"


def merge_from_file_checked(cfg: CN, path: str) -> None:
    """``cfg.merge_from_file(path)`` with errors that name ``path`` and the key.

    Keeps the exception types of yacs (KeyError for unknown keys, ValueError
    for a type mismatch).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file "{path}" does not exist')
    try:
        cfg.merge_from_file(path)
    except KeyError as e:
        raise KeyError(_explain(cfg, e, f'In config file "{path}"')) from None
    except ValueError as e:
        raise ValueError(_explain(cfg, e, f'In config file "{path}"')) from None
    except AssertionError as e:
        raise AssertionError(_explain(cfg, e, f'In config file "{path}"')) from None


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
