"""How train.py assembles a run's config: merge order, per-dataset values as data, TASK."""
import pytest

from mmrl.config import build_parser, dataset_overrides, setup_cfg

MMRL_YAML = "configs/trainers/MMRL/vit_b16.yaml"
MMRLPP_YAML = "configs/trainers/MMRLpp/vit_b16.yaml"


def cfg_for(*argv):
    return setup_cfg(build_parser().parse_args(list(argv)))


def write_dataset_yaml(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"DATASET:\n  NAME: \"{name}\"\n")
    return str(path)


def test_method_yaml_values(tmp_path):
    cfg = cfg_for("--trainer", "MMRL", "--config-file", MMRL_YAML,
                  "--dataset-config-file", write_dataset_yaml(tmp_path, "SyntheticDemo"))
    assert cfg.OPTIM.NAME == "adamw" and cfg.OPTIM.LR == 0.001 and cfg.OPTIM.MAX_EPOCH == 10
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and isinstance(cfg.OPTIM.WARMUP_CONS_LR, float)
    assert cfg.INPUT.RRCROP_SCALE == (0.5, 1) and isinstance(cfg.INPUT.RRCROP_SCALE, tuple)
    assert cfg.INPUT.TRANSFORMS == ("random_resized_crop", "random_flip", "normalize")
    assert cfg.TRAINER.MMRL.REP_LAYERS == [6, 7, 8, 9, 10, 11, 12]
    # No table entry for this dataset: the YAML value stays.
    assert cfg.TRAINER.MMRL.REG_WEIGHT == 1.0
    assert cfg.TASK == "B2N" and cfg.is_frozen()


@pytest.mark.parametrize("dataset, reg_weight, rep_dim", [
    ("StanfordCars", 7.0, 512), ("OxfordPets", 0.2, 512), ("EuroSAT", 0.01, 2048), ("ImageNet", 0.5, 512),
])
def test_mmrl_dataset_values_apply_after_yaml(tmp_path, dataset, reg_weight, rep_dim):
    cfg = cfg_for("--trainer", "MMRL", "--config-file", MMRL_YAML,
                  "--dataset-config-file", write_dataset_yaml(tmp_path, dataset))
    assert cfg.TRAINER.MMRL.REG_WEIGHT == reg_weight
    assert cfg.TRAINER.MMRL.REP_DIM == rep_dim


def test_opts_override_dataset_values(tmp_path):
    cfg = cfg_for("--trainer", "MMRL", "--config-file", MMRL_YAML,
                  "--dataset-config-file", write_dataset_yaml(tmp_path, "EuroSAT"),
                  "TRAINER.MMRL.REG_WEIGHT", "0.2", "TRAINER.MMRL.REP_DIM", "512", "TASK", "CD")
    assert cfg.TRAINER.MMRL.REG_WEIGHT == 0.2
    assert cfg.TRAINER.MMRL.REP_DIM == 512
    assert cfg.TASK == "CD"


@pytest.mark.parametrize("task, beta, reg_weight", [("B2N", 0.9, 0.2), ("FS", 0.9, 0.2), ("CD", 0.9, 0.1)])
def test_mmrlpp_table_is_chosen_by_task(tmp_path, task, beta, reg_weight):
    cfg = cfg_for("--trainer", "MMRLpp", "--config-file", MMRLPP_YAML,
                  "--dataset-config-file", write_dataset_yaml(tmp_path, "ImageNet"), "TASK", task)
    assert (cfg.TRAINER.MMRLpp.BETA, cfg.TRAINER.MMRLpp.REG_WEIGHT) == (beta, reg_weight)


def test_mmrlpp_cd_changes_only_beta_for_targets(tmp_path):
    b2n = cfg_for("--trainer", "MMRLpp", "--config-file", MMRLPP_YAML,
                  "--dataset-config-file", write_dataset_yaml(tmp_path, "Food101"))
    cd = cfg_for("--trainer", "MMRLpp", "--config-file", MMRLPP_YAML,
                 "--dataset-config-file", write_dataset_yaml(tmp_path, "Food101"), "TASK", "CD")
    assert (b2n.TRAINER.MMRLpp.BETA, b2n.TRAINER.MMRLpp.REG_WEIGHT) == (0.1, 1.0)
    assert (cd.TRAINER.MMRLpp.BETA, cd.TRAINER.MMRLpp.REG_WEIGHT) == (0.3, 1.0)


def test_overrides_table_is_flat_key_value_list():
    assert dataset_overrides("MMRL", "FS", "EuroSAT") == [
        "TRAINER.MMRL.REP_DIM", 2048, "TRAINER.MMRL.REG_WEIGHT", 0.01]
    assert dataset_overrides("MMRL", "B2N", "NoSuchDataset") == []
    assert dataset_overrides("ZeroshotCLIP", "B2N", "ImageNet") == []


def test_seed_from_command_line_only_when_given(tmp_path):
    assert cfg_for("--seed", "0").SEED == 0
    assert cfg_for().SEED == -1
    assert cfg_for("--seed", "3").SEED == 3


def test_command_line_arguments_are_applied():
    cfg = cfg_for("--root", "/data", "--output-dir", "out", "--trainer", "MMRL", "--backbone", "ViT-B/32",
                  "--train-epoch", "3")
    assert (cfg.DATASET.ROOT, cfg.OUTPUT_DIR, cfg.TRAINER.NAME) == ("/data", "out", "MMRL")
    assert (cfg.MODEL.BACKBONE.NAME, cfg.OPTIM.MAX_EPOCH) == ("ViT-B/32", 3)


def test_unknown_key_on_command_line_is_named():
    with pytest.raises(ValueError, match="TRAINER.MMRL.NOPE"):
        cfg_for("TRAINER.MMRL.NOPE", "1")


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("OPTIM:\n  LEARNING_RATE: 0.1\n")
    with pytest.raises(ValueError, match="LEARNING_RATE") as err:
        cfg_for("--config-file", str(bad))
    assert str(bad) in str(err.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        cfg_for("--config-file", str(tmp_path / "nope.yaml"))


def test_bad_task_is_rejected():
    with pytest.raises(ValueError, match="TASK must be one of B2N, FS, CD"):
        cfg_for("TASK", "XD")


def test_odd_opts_are_rejected():
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        cfg_for("TASK")
