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
from .record import (
    CONFIG_RECORD_FILE,
    RUN_ONLY_KEYS,
    config_differences,
    config_record,
    load_config_record,
    write_config_record,
)

__all__ = [
    "BASE_KEY",
    "CONFIG_RECORD_FILE",
    "RUN_ONLY_KEYS",
    "CfgNode",
    "config_differences",
    "config_record",
    "load_config_record",
    "write_config_record",
    "all_keys",
    "load_yaml_chain",
    "get_cfg_default",
    "merge_from_file_checked",
    "merge_from_list_checked",
    "merge_mapping_checked",
]
