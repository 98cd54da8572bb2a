from .logger import Logger, log_error, restore_stdout, setup_logger
from .meters import AverageMeter, MetricMeter
from .registry import Registry, check_availability, closest_name
from .tools import (
    atomic_write,
    atomic_write_bytes,
    check_isfile,
    collect_env_info,
    created_file_mode,
    listdir_nohidden,
    mkdir_if_missing,
    read_json,
    sample_seed,
    seeded_generators,
    set_random_seed,
    write_json,
)
from .torchtools import (
    epoch_file_name,
    find_checkpoint_file,
    get_rng_state,
    load_checkpoint,
    load_pretrained_weights,
    read_pointer,
    resume_from_checkpoint,
    save_checkpoint,
    set_rng_state,
)
