from yacs.config import CfgNode

from .checked import all_keys, merge_from_file_checked, merge_from_list_checked
from .defaults import get_cfg_default

__all__ = [
    "CfgNode",
    "all_keys",
    "get_cfg_default",
    "merge_from_file_checked",
    "merge_from_list_checked",
]
