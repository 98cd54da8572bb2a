"""How train.py assembles a run's config: merge order, trainer keys, YAML inheritance,
per-dataset values as data, TASK."""
import shutil

import pytest

from mmrl.config import assemble_config, build_parser, dataset_values, default_cfg, setup_cfg
from mmrl.dassl.config import get_cfg_default

MMRL_YAML = "configs/trainers/MMRL/vit_b16.yaml"
MMRLPP_YAML = "configs/trainers/MMRLpp/vit_b16.yaml"


def cfg_for(*argv):
    return setup_cfg(build_parser().parse_args(list(argv)))


def assembled(*argv):
    return assemble_config(build_parser().parse_args(list(argv)))


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
    out = assembled("--trainer", "MMRL", "--config-file", MMRL_YAML,
                    "--dataset-config-file", write_dataset_yaml(tmp_path, "EuroSAT"),
                    "TRAINER.MMRL.REG_WEIGHT", "0.3", "TASK", "FS")
    assert out.cfg.TRAINER.MMRL.REG_WEIGHT == 0.3
    assert out.cfg.TRAINER.MMRL.REP_DIM == 2048
    # What the log reports: the table's values that took effect.
    assert out.dataset_values == {"TRAINER.MMRL.REP_DIM": 2048}
    assert out.dataset_values_line() == "Per-dataset values for EuroSAT (FS): TRAINER.MMRL.REP_DIM=2048"


def test_values_line_of_a_dataset_without_values(tmp_path):
    out = assembled("--trainer", "MMRL", "--config-file", MMRL_YAML,
                    "--dataset-config-file", write_dataset_yaml(tmp_path, "EuroSAT"), "TASK", "CD")
    # MMRL's cross-dataset runs use one REG_WEIGHT and REP_DIM for every dataset.
    assert (out.cfg.TRAINER.MMRL.REG_WEIGHT, out.cfg.TRAINER.MMRL.REP_DIM) == (1.0, 512)
    assert out.dataset_values_line() == "Per-dataset values for EuroSAT (CD): none"
    zero_shot = assembled("--trainer", "ZeroshotCLIP", "--config-file", "configs/trainers/ZeroshotCLIP/vit_b16.yaml")
    assert zero_shot.dataset_values is None and zero_shot.dataset_values_line() is None


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


def test_overrides_table_is_read_by_task_and_dataset():
    path = "configs/trainers/MMRL/dataset_overrides.yaml"
    assert dataset_values(path, "MMRL", "FS", "EuroSAT") == {"REP_DIM": 2048, "REG_WEIGHT": 0.01}
    assert dataset_values(path, "MMRL", "B2N", "SyntheticDemo") == {}
    assert dataset_values(path, "MMRL", "CD", "ImageNet") == {}


# ---- the trainer's keys --------------------------------------------------------------------

# The papers' values: the defaults are the only home of the method's values.
MMRL_KEYS = {"ALPHA": 0.7, "REG_WEIGHT": 1.0, "REP_LAYERS": [6, 7, 8, 9, 10, 11, 12], "REP_DIM": 512,
             "N_REP_TOKENS": 5, "PREC": "amp", "PREC_ON_CPU": False, "RECOMPUTE": "auto",
             "MEMORY_BUDGET_GB": 0.0}


def test_engine_defaults_hold_no_method_keys():
    cfg = get_cfg_default()
    assert list(cfg.TRAINER) == ["NAME"]
    assert "PATH" not in cfg.MODEL.BACKBONE


@pytest.mark.parametrize("trainer, keys", [
    ("MMRL", MMRL_KEYS),
    # MMRL++ extends MMRL's keys with its own three.
    ("MMRLpp", {**MMRL_KEYS, "BETA": 0.9, "PROJ_LORA_DIM": 64, "RES_LORA_DIM": 4}),
])
def test_trainer_declares_its_keys(trainer, keys):
    cfg = default_cfg(trainer)
    assert dict(cfg.TRAINER[trainer]) == keys
    assert {type(v) for v in cfg.TRAINER[trainer].values()} == {type(v) for v in keys.values()}
    assert cfg.MODEL.BACKBONE.PATH == ""  # every CLIP trainer's
    # Only the trainer being built adds its keys.
    assert sorted(cfg.TRAINER) == sorted(["NAME", trainer])


def test_unknown_trainer_is_named():
    with pytest.raises(ValueError, match="'MMRLp' is not a registered trainer; did you mean 'MMRL"):
        cfg_for("--trainer", "MMRLp")


def test_trainer_name_from_the_method_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("_BASE_: %s\nTRAINER:\n  NAME: MMRL\n  MMRL:\n    ALPHA: 0.5\n"
                    % (tmp_path / "base.yaml"))
    (tmp_path / "base.yaml").write_text("OPTIM:\n  LR: 0.01\n")
    shutil.copy("configs/trainers/MMRL/dataset_overrides.yaml", tmp_path)
    cfg = cfg_for("--config-file", str(path))
    assert (cfg.TRAINER.NAME, cfg.TRAINER.MMRL.ALPHA, cfg.OPTIM.LR) == ("MMRL", 0.5, 0.01)


# ---- YAML inheritance ----------------------------------------------------------------------


@pytest.mark.parametrize("trainer, name, differences", [
    ("MMRL", "vit_b16_imagenet", {"DATALOADER.TRAIN_X.BATCH_SIZE": 32, "OPTIM.MAX_EPOCH": 5}),
    ("MMRL", "vit_b16_few_shot", {"DATALOADER.TRAIN_X.BATCH_SIZE": 32, "OPTIM.MAX_EPOCH": 50}),
    ("MMRL", "vit_b16_cross_datasets", {"DATALOADER.TRAIN_X.BATCH_SIZE": 32, "OPTIM.MAX_EPOCH": 1,
                                        "OPTIM.WARMUP_EPOCH": 0, "TRAINER.MMRL.REG_WEIGHT": 0.2}),
    ("MMRLpp", "vit_b16_few_shot", {"DATALOADER.TRAIN_X.BATCH_SIZE": 32, "OPTIM.MAX_EPOCH": 100,
                                    "OPTIM.LR": 0.002}),
])
def test_protocol_files_state_their_differences_from_vit_b16(trainer, name, differences):
    def flat(node, prefix=""):
        out = {}
        for k, v in node.items():
            out.update(flat(v, f"{prefix}{k}.") if hasattr(v, "items") else {f"{prefix}{k}": v})
        return out

    base = flat(cfg_for("--trainer", trainer, "--config-file", f"configs/trainers/{trainer}/vit_b16.yaml"))
    derived = flat(cfg_for("--trainer", trainer, "--config-file", f"configs/trainers/{trainer}/{name}.yaml"))
    assert {k: v for k, v in derived.items() if base[k] != v} == differences


def test_unknown_key_in_a_base_names_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text("OPTIM:\n  LRR: 0.1\n")
    (tmp_path / "child.yaml").write_text("_BASE_: base.yaml\n")
    with pytest.raises(ValueError) as err:
        cfg_for("--config-file", str(tmp_path / "child.yaml"))
    message = str(err.value)
    assert f'"{tmp_path / "base.yaml"}" (a _BASE_ of "{tmp_path / "child.yaml"}")' in message
    assert 'Did you mean "OPTIM.LR"?' in message


def test_base_cycle_and_missing_base_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    with pytest.raises(ValueError, match="inherits itself"):
        cfg_for("--config-file", str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("_BASE_: nope.yaml\n")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        cfg_for("--config-file", str(tmp_path / "c.yaml"))


# ---- the per-dataset values file -----------------------------------------------------------


def method_folder(tmp_path, table):
    """A copy of MMRL's vit_b16.yaml with the given per-dataset table next to it."""
    shutil.copy(MMRL_YAML, tmp_path / "vit_b16.yaml")
    if table is not None:
        (tmp_path / "dataset_overrides.yaml").write_text(table)
    return str(tmp_path / "vit_b16.yaml")


def test_misspelled_key_in_the_table_names_file_key_and_closest(tmp_path):
    config = method_folder(tmp_path, "B2N:\n  EuroSAT: {REG_WEIGT: 0.5}\n")
    data = write_dataset_yaml(tmp_path, "EuroSAT")
    with pytest.raises(ValueError) as err:
        cfg_for("--trainer", "MMRL", "--config-file", config, "--dataset-config-file", data)
    message = str(err.value)
    assert str(tmp_path / "dataset_overrides.yaml") in message
    assert "TRAINER.MMRL.REG_WEIGT" in message and 'Did you mean "TRAINER.MMRL.REG_WEIGHT"?' in message


@pytest.mark.parametrize("table, message", [
    ("B2M:\n  EuroSAT: {REG_WEIGHT: 0.5}\n", 'unknown TASK "B2M". Did you mean "B2N"?'),
    ("B2N:\n  EuroSat: {REG_WEIGHT: 0.5}\n", '"EuroSat" (B2N) is not a registered dataset. Did you mean "EuroSAT"?'),
    ("B2N:\n  EuroSAT: {REG_WEIGHT: 1}\n", "Type mismatch"),
])
def test_bad_table_entries_are_named(tmp_path, table, message):
    config = method_folder(tmp_path, table)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        cfg_for("--trainer", "MMRL", "--config-file", config,
                "--dataset-config-file", write_dataset_yaml(tmp_path, "EuroSAT"))


def test_missing_table_of_a_trainer_that_has_one_is_an_error(tmp_path):
    config = method_folder(tmp_path, None)
    with pytest.raises(FileNotFoundError, match="takes its per-dataset values from a dataset_overrides.yaml"):
        cfg_for("--trainer", "MMRL", "--config-file", config)


def test_table_is_found_next_to_a_base(tmp_path):
    # A config of one's own that inherits the method's file gets the method's table.
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"_BASE_: {__import__('os').path.abspath(MMRL_YAML)}\nOPTIM:\n  MAX_EPOCH: 2\n")
    cfg = cfg_for("--trainer", "MMRL", "--config-file", str(mine),
                  "--dataset-config-file", write_dataset_yaml(tmp_path, "StanfordCars"))
    assert (cfg.OPTIM.MAX_EPOCH, cfg.TRAINER.MMRL.REG_WEIGHT) == (2, 7.0)


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


def test_a_missing_trainer_or_an_empty_yaml_is_named(tmp_path):
    dataset = write_dataset_yaml(tmp_path, "SyntheticDemo")
    # A method YAML that sets no TRAINER.NAME, and no --trainer: the flag is what is missing.
    with pytest.raises(ValueError, match=f"^--trainer is missing and {MMRL_YAML} sets no TRAINER.NAME: name the "
                                         "trainer to run"):
        assembled("--config-file", MMRL_YAML, "--dataset-config-file", dataset)
    for content in ("", "# nothing but a comment\n", "{}\n"):
        empty = tmp_path / "empty.yaml"
        empty.write_text(content)
        with pytest.raises(ValueError, match=f"^--config-file {empty} is empty: give the YAML with the method's"):
            assembled("--trainer", "MMRL", "--config-file", str(empty), "--dataset-config-file", dataset)
        with pytest.raises(ValueError, match=f"^--dataset-config-file {empty} is empty"):
            assembled("--trainer", "MMRL", "--config-file", MMRL_YAML, "--dataset-config-file", str(empty))
