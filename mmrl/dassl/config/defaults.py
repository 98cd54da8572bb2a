"""The engine's config keys with their defaults: Dassl's, the lineage's protocol keys, and ours.

A trainer declares its own keys (``TRAINER.<NAME>``) with its ``add_config(cfg)`` class hook,
applied by :func:`mmrl.config.assemble_config` for the trainer being built.

yacs checks merges against these types exactly (an int never becomes a
float), so each default's type is part of the interface.
"""
from yacs.config import CfgNode as CN


def _dassl_defaults() -> CN:
    _C = CN()
    _C.VERSION = 1
    _C.OUTPUT_DIR = "./output"
    # Folder to resume from; empty means OUTPUT_DIR.
    _C.RESUME = ""
    # Seeds only when >= 0.
    _C.SEED = -1
    _C.USE_CUDA = True
    _C.VERBOSE = True

    _C.INPUT = CN()
    _C.INPUT.SIZE = (224, 224)
    _C.INPUT.INTERPOLATION = "bilinear"
    _C.INPUT.TRANSFORMS = ()
    _C.INPUT.NO_TRANSFORM = False
    _C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
    _C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
    _C.INPUT.CROP_PADDING = 4
    _C.INPUT.RRCROP_SCALE = (0.08, 1.0)
    _C.INPUT.CUTOUT_N = 1
    _C.INPUT.CUTOUT_LEN = 16
    _C.INPUT.GN_MEAN = 0.0
    _C.INPUT.GN_STD = 0.15
    _C.INPUT.COLORJITTER_B = 0.4
    _C.INPUT.COLORJITTER_C = 0.4
    _C.INPUT.COLORJITTER_S = 0.4
    _C.INPUT.COLORJITTER_H = 0.1
    _C.INPUT.RGS_P = 0.2
    _C.INPUT.GB_P = 0.5
    _C.INPUT.GB_K = 21

    _C.DATASET = CN()
    _C.DATASET.ROOT = ""
    _C.DATASET.NAME = ""
    _C.DATASET.SOURCE_DOMAINS = ()
    _C.DATASET.TARGET_DOMAINS = ()
    # < 1 means the full training set.
    _C.DATASET.NUM_SHOTS = -1

    _C.DATALOADER = CN()
    _C.DATALOADER.NUM_WORKERS = 4
    _C.DATALOADER.K_TRANSFORMS = 1
    _C.DATALOADER.RETURN_IMG0 = False
    _C.DATALOADER.TRAIN_X = CN()
    _C.DATALOADER.TRAIN_X.SAMPLER = "RandomSampler"
    _C.DATALOADER.TRAIN_X.BATCH_SIZE = 32
    _C.DATALOADER.TEST = CN()
    _C.DATALOADER.TEST.SAMPLER = "SequentialSampler"
    _C.DATALOADER.TEST.BATCH_SIZE = 32

    _C.MODEL = CN()
    _C.MODEL.INIT_WEIGHTS = ""
    _C.MODEL.BACKBONE = CN()
    _C.MODEL.BACKBONE.NAME = ""
    _C.MODEL.BACKBONE.PRETRAINED = True
    _C.MODEL.HEAD = CN()
    _C.MODEL.HEAD.NAME = ""

    _C.OPTIM = CN()
    _C.OPTIM.NAME = "adam"
    _C.OPTIM.LR = 0.0003
    _C.OPTIM.WEIGHT_DECAY = 5e-4
    _C.OPTIM.MOMENTUM = 0.9
    # Spelled as in Dassl.
    _C.OPTIM.SGD_DAMPNING = 0
    _C.OPTIM.SGD_NESTEROV = False
    _C.OPTIM.RMSPROP_ALPHA = 0.99
    _C.OPTIM.ADAM_BETA1 = 0.9
    _C.OPTIM.ADAM_BETA2 = 0.999
    _C.OPTIM.STAGED_LR = False
    _C.OPTIM.NEW_LAYERS = ()
    _C.OPTIM.BASE_LR_MULT = 0.1
    _C.OPTIM.LR_SCHEDULER = "single_step"
    # single_step: a value <= 0 means the step size is MAX_EPOCH.
    _C.OPTIM.STEPSIZE = (-1,)
    _C.OPTIM.GAMMA = 0.1
    _C.OPTIM.MAX_EPOCH = 10
    # Warmup only when > 0.
    _C.OPTIM.WARMUP_EPOCH = -1
    _C.OPTIM.WARMUP_TYPE = "linear"
    _C.OPTIM.WARMUP_CONS_LR = 1e-5
    _C.OPTIM.WARMUP_MIN_LR = 1e-5
    _C.OPTIM.WARMUP_RECOUNT = True

    _C.TRAIN = CN()
    # <= 0: only the last epoch is kept.
    _C.TRAIN.CHECKPOINT_FREQ = 0
    _C.TRAIN.PRINT_FREQ = 10
    _C.TRAIN.COUNT_ITER = "train_x"

    _C.TEST = CN()
    _C.TEST.EVALUATOR = "Classification"
    _C.TEST.PER_CLASS_RESULT = False
    _C.TEST.COMPUTE_CMAT = False
    _C.TEST.NO_TEST = False
    _C.TEST.SPLIT = "test"
    _C.TEST.FINAL_MODEL = "last_step"

    _C.TRAINER = CN()
    _C.TRAINER.NAME = ""
    return _C


def _extend_lineage(cfg: CN) -> None:
    """Keys of the CoOp / MMRL lineage's protocols that the engine's data layer and the config
    assembly read (a method's own keys are declared by its trainer, ``add_config``)."""
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all / base / new
    cfg.TASK = "B2N"  # B2N / FS / CD


def _extend_project(cfg: CN) -> None:
    """Keys of this project beyond the lineage."""
    # Where split files and few-shot caches are written; empty: the dataset folder, or a cache
    # folder of its own when the dataset folder is read-only. Caches already in the dataset folder
    # are always read from there.
    cfg.DATASET.CACHE_DIR = ""
    # An unreadable (corrupt, empty) image stops the run with its path; True skips such images,
    # counts them and lists them at the end.
    cfg.DATALOADER.SKIP_UNREADABLE = False

    # The generic folder dataset: one sub-folder of images per class.
    cfg.DATASET.FOLDER = CN()
    cfg.DATASET.FOLDER.DIR = ""
    cfg.DATASET.FOLDER.CLASSNAMES = ""
    cfg.DATASET.FOLDER.TEMPLATE = "a photo of a {}."
    cfg.DATASET.FOLDER.P_TRAIN = 0.5
    cfg.DATASET.FOLDER.P_VAL = 0.2
    cfg.DATASET.FOLDER.SPLIT_SEED = 1

    # Each training image's augmentation a function of (SEED, epoch, sample index) instead of the
    # process's global generators: the same images whatever NUM_WORKERS or the number of ranks.
    # Off by default (a single process keeps the lineage's random stream); on in distributed runs.
    cfg.DATALOADER.SEEDED_AUGMENTATION = False

    # Runs under torchrun: seconds a rank waits for the others in a collective before the run
    # fails (a crashed or hung rank ends every rank within this time).
    cfg.DISTRIBUTED = CN()
    cfg.DISTRIBUTED.TIMEOUT = 1800


def get_cfg_default() -> CN:
    """A fresh, mutable config tree holding the engine's keys at their defaults."""
    cfg = _dassl_defaults()
    _extend_lineage(cfg)
    _extend_project(cfg)
    return cfg
