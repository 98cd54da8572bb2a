"""The resolved config of every job the protocol scripts launch, against the fixture table
tests/protocol_configs.tsv: each trainer x protocol x dataset x train/test, as the sweeps and
scripts/common.sh build them, resolved by train.py's config assembly."""
import pytest

from mmrl.config import build_parser, setup_cfg
from tests.protocol_jobs import COLUMNS, read_fixture, record_jobs, rows_of, scripted_trainers

PROTOCOL_KEYS = {"DATASET.NUM_SHOTS", "DATASET.SUBSAMPLE_CLASSES", "TASK"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("jobs"))
    return record_jobs(work, scripted_trainers()), work


@pytest.fixture(scope="module")
def rows(recorded):
    return rows_of(*recorded)


def test_every_scripted_job_resolves_to_the_fixture(rows):
    fixture = {(r["job"], r["mode"]): r for r in read_fixture()}
    resolved = {(r["job"], r["mode"]): r for r in rows}
    assert sorted(resolved) == sorted(fixture), "the scripts launch other jobs than the fixture lists"
    differences = [
        f"{job} ({mode}) {column}: fixture {fixture[job, mode][column]}, now {row[column]}"
        for (job, mode), row in sorted(resolved.items()) for column in COLUMNS
        if row[column] != fixture[job, mode][column]
    ]
    assert not differences, "\n".join(differences[:20])


def test_scripts_pass_no_method_values(recorded):
    for argv in recorded[0]:
        opts = build_parser().parse_args(argv).opts
        assert set(opts[0::2]) <= PROTOCOL_KEYS, argv


def test_direct_call_gives_the_scripts_values():
    # The lineage's cross-dataset command as a user types it (README, reference scripts), without
    # the method opts its scripts used to add: ImageNet trains with the CD protocol's REG_WEIGHT.
    fixture = {(r["job"], r["mode"]): r for r in read_fixture()}
    for trainer in ("MMRL", "MMRLpp"):
        cfg = setup_cfg(build_parser().parse_args([
            "--root", "data", "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/imagenet.yaml",
            "--config-file", f"configs/trainers/{trainer}/vit_b16_cross_datasets.yaml",
            "--output-dir", "out", "DATASET.NUM_SHOTS", "16", "TASK", "CD"]))
        row = fixture[f"base2new/train_base/imagenet/shots_16/{trainer}/vit_b16_cross_datasets", "train"]
        assert repr(cfg.TRAINER[trainer].REG_WEIGHT) == row["REG_WEIGHT"]
        assert repr(cfg.TRAINER[trainer].REP_DIM) == row["REP_DIM"]
    assert fixture["base2new/train_base/imagenet/shots_16/MMRL/vit_b16_cross_datasets", "train"]["REG_WEIGHT"] == "0.2"
    assert fixture["base2new/train_base/imagenet/shots_16/MMRLpp/vit_b16_cross_datasets", "train"]["REG_WEIGHT"] == "0.1"
