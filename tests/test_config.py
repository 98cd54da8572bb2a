"""Config defaults and yacs merge strictness."""
import pytest

from mmrl.dassl.config import (
    get_cfg_default,
    merge_from_file_checked,
    merge_from_list_checked,
)

DASSL_DEFAULTS = {
    "VERSION": 1,
    "OUTPUT_DIR": "./output",
    "RESUME": "",
    "SEED": -1,
    "USE_CUDA": True,
    "VERBOSE": True,
    "INPUT.SIZE": (224, 224),
    "INPUT.INTERPOLATION": "bilinear",
    "INPUT.TRANSFORMS": (),
    "INPUT.NO_TRANSFORM": False,
    "INPUT.PIXEL_MEAN": [0.485, 0.456, 0.406],
    "INPUT.PIXEL_STD": [0.229, 0.224, 0.225],
    "INPUT.CROP_PADDING": 4,
    "INPUT.RRCROP_SCALE": (0.08, 1.0),
    "INPUT.CUTOUT_N": 1,
    "INPUT.CUTOUT_LEN": 16,
    "INPUT.GN_MEAN": 0.0,
    "INPUT.GN_STD": 0.15,
    "INPUT.COLORJITTER_B": 0.4,
    "INPUT.COLORJITTER_C": 0.4,
    "INPUT.COLORJITTER_S": 0.4,
    "INPUT.COLORJITTER_H": 0.1,
    "INPUT.RGS_P": 0.2,
    "INPUT.GB_P": 0.5,
    "INPUT.GB_K": 21,
    "DATASET.ROOT": "",
    "DATASET.NAME": "",
    "DATASET.SOURCE_DOMAINS": (),
    "DATASET.TARGET_DOMAINS": (),
    "DATASET.NUM_SHOTS": -1,
    "DATALOADER.NUM_WORKERS": 4,
    "DATALOADER.K_TRANSFORMS": 1,
    "DATALOADER.RETURN_IMG0": False,
    "DATALOADER.TRAIN_X.SAMPLER": "RandomSampler",
    "DATALOADER.TRAIN_X.BATCH_SIZE": 32,
    "DATALOADER.TEST.SAMPLER": "SequentialSampler",
    "DATALOADER.TEST.BATCH_SIZE": 32,
    "MODEL.INIT_WEIGHTS": "",
    "MODEL.BACKBONE.NAME": "",
    "MODEL.BACKBONE.PRETRAINED": True,
    "MODEL.HEAD.NAME": "",
    "OPTIM.NAME": "adam",
    "OPTIM.LR": 0.0003,
    "OPTIM.WEIGHT_DECAY": 5e-4,
    "OPTIM.MOMENTUM": 0.9,
    "OPTIM.SGD_DAMPNING": 0,
    "OPTIM.SGD_NESTEROV": False,
    "OPTIM.RMSPROP_ALPHA": 0.99,
    "OPTIM.ADAM_BETA1": 0.9,
    "OPTIM.ADAM_BETA2": 0.999,
    "OPTIM.STAGED_LR": False,
    "OPTIM.NEW_LAYERS": (),
    "OPTIM.BASE_LR_MULT": 0.1,
    "OPTIM.LR_SCHEDULER": "single_step",
    "OPTIM.STEPSIZE": (-1,),
    "OPTIM.GAMMA": 0.1,
    "OPTIM.MAX_EPOCH": 10,
    "OPTIM.WARMUP_EPOCH": -1,
    "OPTIM.WARMUP_TYPE": "linear",
    "OPTIM.WARMUP_CONS_LR": 1e-5,
    "OPTIM.WARMUP_MIN_LR": 1e-5,
    "OPTIM.WARMUP_RECOUNT": True,
    "TRAIN.CHECKPOINT_FREQ": 0,
    "TRAIN.PRINT_FREQ": 10,
    "TRAIN.COUNT_ITER": "train_x",
    "TEST.EVALUATOR": "Classification",
    "TEST.PER_CLASS_RESULT": False,
    "TEST.COMPUTE_CMAT": False,
    "TEST.NO_TEST": False,
    "TEST.SPLIT": "test",
    "TEST.FINAL_MODEL": "last_step",
    "TRAINER.NAME": "",
}

# The lineage's protocol keys; the method keys are the trainers' own (tests/test_config_assembly.py).
LINEAGE_DEFAULTS = {
    "DATASET.SUBSAMPLE_CLASSES": "all",
    "TASK": "B2N",
}

PROJECT_DEFAULTS = {
    "DATASET.FOLDER.DIR": "",
    "DATASET.FOLDER.CLASSNAMES": "",
    "DATASET.FOLDER.TEMPLATE": "a photo of a {}.",
    "DATASET.FOLDER.P_TRAIN": 0.5,
    "DATASET.FOLDER.P_VAL": 0.2,
    "DATASET.FOLDER.SPLIT_SEED": 1,
    "DATALOADER.SEEDED_AUGMENTATION": False,
    "DISTRIBUTED.TIMEOUT": 1800,
}


def _get(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize(
    "key,default",
    sorted({**DASSL_DEFAULTS, **LINEAGE_DEFAULTS, **PROJECT_DEFAULTS}.items()),
)
def test_default_value_and_type(key, default):
    value = _get(get_cfg_default(), key)
    assert type(value) is type(default), key
    assert value == default


def test_each_call_returns_an_independent_tree():
    a = get_cfg_default()
    a.OPTIM.LR = 0.5
    assert get_cfg_default().OPTIM.LR == 0.0003


def _yaml(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def test_unknown_key_in_yaml_names_file_key_and_suggestion(tmp_path):
    path = _yaml(tmp_path, "OPTIM:\n  LRR: 0.1\n")
    with pytest.raises(KeyError) as info:
        merge_from_file_checked(get_cfg_default(), path)
    msg = str(info.value)
    assert path in msg
    assert "OPTIM.LRR" in msg
    assert 'Did you mean "OPTIM.LR"?' in msg


def test_unknown_key_in_yaml_plain_yacs_is_keyerror(tmp_path):
    path = _yaml(tmp_path, "FOO: 1\n")
    with pytest.raises(KeyError, match="Non-existent config key: FOO"):
        get_cfg_default().merge_from_file(path)


def test_unknown_key_in_opts_names_key():
    with pytest.raises(AssertionError) as info:
        merge_from_list_checked(get_cfg_default(), ["OPTIM.WARMUP_EPOCHS", "0"])
    assert "OPTIM.WARMUP_EPOCHS" in str(info.value)
    assert 'Did you mean "OPTIM.WARMUP_EPOCH"?' in str(info.value)
    with pytest.raises(AssertionError, match="Non-existent key: FOO.BAR"):
        get_cfg_default().merge_from_list(["FOO.BAR", "1"])


def test_odd_opts_count_is_explained():
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        merge_from_list_checked(get_cfg_default(), ["OPTIM.LR"])


def test_int_never_becomes_float(tmp_path):
    with pytest.raises(ValueError, match="Type mismatch.*OPTIM.LR"):
        merge_from_list_checked(get_cfg_default(), ["OPTIM.LR", "1"])
    with pytest.raises(ValueError, match="OPTIM.GAMMA"):
        merge_from_list_checked(get_cfg_default(), ["OPTIM.GAMMA", "1"])
    path = _yaml(tmp_path, "OPTIM:\n  LR: 1\n")
    with pytest.raises(ValueError) as info:
        merge_from_file_checked(get_cfg_default(), path)
    assert path in str(info.value) and "OPTIM.LR" in str(info.value)


def test_list_and_tuple_convert_to_the_default_type(tmp_path):
    cfg = get_cfg_default()
    merge_from_file_checked(
        cfg,
        _yaml(
            tmp_path,
            "INPUT:\n  TRANSFORMS: [random_flip, normalize]\n"
            "  PIXEL_MEAN: (0.5, 0.5, 0.5)\n",
        ),
    )
    assert cfg.INPUT.TRANSFORMS == ("random_flip", "normalize")
    assert cfg.INPUT.PIXEL_MEAN == [0.5, 0.5, 0.5]


def test_string_values_go_through_literal_eval(tmp_path):
    cfg = get_cfg_default()
    merge_from_file_checked(
        cfg,
        _yaml(
            tmp_path,
            "INPUT:\n  SIZE: (32, 32)\nOPTIM:\n  WARMUP_CONS_LR: 1e-5\n"
            "  LR: 0.002\nMODEL:\n  BACKBONE:\n    NAME: ViT-B/16\n",
        ),
    )
    assert cfg.INPUT.SIZE == (32, 32)
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-05
    assert cfg.MODEL.BACKBONE.NAME == "ViT-B/16"
    merge_from_list_checked(
        cfg,
        ["DATASET.NUM_SHOTS", "16", "TEST.NO_TEST", "True", "TASK", "FS",
         "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.GAMMA", "0.5"],
    )
    assert cfg.DATASET.NUM_SHOTS == 16
    assert cfg.TEST.NO_TEST is True
    assert cfg.TASK == "FS"
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "base"
    assert cfg.OPTIM.GAMMA == 0.5


def test_missing_yaml_file_named():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        merge_from_file_checked(get_cfg_default(), "/nonexistent/nope.yaml")


def test_freeze_makes_config_immutable():
    cfg = get_cfg_default()
    cfg.freeze()
    with pytest.raises(AttributeError):
        cfg.OPTIM.LR = 0.1
