from yacs.config import CfgNode

from .checked import (
    BASE_KEY,
    all_keys,
    load_yaml_chain,
    merge_from_file_checked,
    merge_from_list_checked,
    merge_mapping_checked,
)
from .defaults import get_cfg_default

__all__ = [
    "BASE_KEY",
    "CfgNode",
    "all_keys",
    "load_yaml_chain",
    "get_cfg_default",
    "merge_from_file_checked",
    "merge_from_list_checked",
    "merge_mapping_checked",
]
