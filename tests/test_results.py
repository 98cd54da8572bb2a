"""A run's result: results.json written by the engine, and the one reader (mmrl.results) used by
parse_test_res.py and the scripts."""
import json
import os
import subprocess

import pytest

import parse_test_res
from mmrl.results import RESULTS_FILE, as_logged, metric_regex, read_log_metric, read_run, write_record
from test_parse_test_res import CONFIG_DUMP, error_of, markdown_rows, result_block, write_log

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("split", "total", "correct", "accuracy", "error", "macro_f1", "task", "logits", "epoch", "trainer",
          "dataset", "subsample", "shots", "seed", "config_file", "dataset_config_file", "backbone",
          "wall_time_s", "after_training", "log")
TRUNCATED = CONFIG_DUMP + "epoch [1/2] batch [5/5] time 0.1 (0.1) loss 1.2 (1.3) acc 25.0000 (25.0000) lr 1.0000e-03\n"


def run(*argv, capsys) -> str:
    assert parse_test_res.main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_a_test_run_leaves_results_json_that_agrees_with_its_log(demo_run):
    _, out = demo_run
    with open(out / RESULTS_FILE) as f:
        record = json.load(f)
    assert set(FIELDS) <= set(record)
    assert record["split"] == "test" and record["accuracy"] == 100.0 * record["correct"] / record["total"]
    assert record["error"] == pytest.approx(100.0 - record["accuracy"])
    assert (record["task"], record["logits"], record["subsample"], record["shots"], record["seed"]) == ("B2N", "fused", "base", 4, 1)
    assert (record["trainer"], record["dataset"], record["backbone"]) == ("MMRL", "SyntheticDemo", "mini-random")
    assert (record["epoch"], record["after_training"], record["log"]) == (1, True, "log.txt")
    assert record["config_file"] == "configs/trainers/MMRL/demo.yaml" and record["wall_time_s"] > 0
    for key in ("accuracy", "error", "macro_f1"):
        assert read_log_metric(str(out / "log.txt"), metric_regex(key)) == as_logged(record[key])
    result = read_run(str(out))
    assert result.finished and result.source == str(out / RESULTS_FILE) and result.log == str(out / "log.txt")
    assert result.value == as_logged(record["accuracy"])
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]  # written atomically


def test_after_a_resumed_run_the_newest_complete_log_is_the_result(tmp_path):
    seed = tmp_path / "seed1"
    seed.mkdir()
    (seed / "log.txt").write_text(TRUNCATED)  # killed during training
    (seed / "log.txt-2026-01-01-00-00-00").write_text(TRUNCATED + "Finish training\n" + result_block(80.0))
    result = read_run(str(seed))
    assert result.finished and result.value == 80.0 and result.source.endswith("log.txt-2026-01-01-00-00-00")
    assert read_run(str(seed), after_training=True).value == 80.0
    # A second rerun on the same second gets a "-1" suffix: newer still.
    (seed / "log.txt-2026-01-01-00-00-00-1").write_text(result_block(81.0))
    assert read_run(str(seed)).value == 81.0
    assert read_run(str(seed), after_training=True).value == 80.0  # that one only evaluated


def test_a_folder_whose_logs_hold_no_result_is_unfinished(tmp_path):
    seed = tmp_path / "seed1"
    seed.mkdir()
    (seed / "log.txt").write_text(TRUNCATED)
    (seed / "log.txt-2026-01-01-00-00-00").write_text(TRUNCATED)
    (seed / "log.txt.unfinished-2025-01-01-00-00-00").write_text(result_block(50.0))  # set aside by the scripts
    result = read_run(str(seed))
    assert result.status == "unfinished" and result.value is None
    assert result.detail.startswith(f"{seed}/log.txt-2026-01-01-00-00-00: no '* accuracy' line after '=> result'")
    assert "nor in log.txt" in result.detail
    assert read_run(str(tmp_path / "nothing")).status == "missing"


def test_results_json_against_the_logs(tmp_path):
    seed = tmp_path / "seed1"
    write_log(str(seed), 60.0)
    write_record(str(seed), {"accuracy": 61.26, "log": "log.txt", "after_training": False})
    assert read_run(str(seed)).value == 61.3  # results.json, at the log line's precision
    assert read_run(str(seed), after_training=True).value == 60.0  # an evaluation is not a training result
    assert read_run(str(seed), "macro_f1").value == 55.0  # a metric the record lacks: the log
    # A newer log with a result (e.g. the lineage's code run into the same folder) wins.
    (seed / "log.txt-2026-01-01-00-00-00").write_text(result_block(70.0))
    assert read_run(str(seed)).value == 70.0


@pytest.mark.parametrize("content, says", [
    ("{not json", "unreadable (JSONDecodeError"),
    ("[61.2]", "not a JSON object but a JSON list"),
    ('{"log": "log.txt"}', "no 'accuracy' field"),
    ('{"accuracy": "61.2"}', "'accuracy' is \"61.2\", not a number"),
    ('{"accuracy": true}', "'accuracy' is true, not a number"),
    ('{"accuracy": 612}', "'accuracy' is 612, not a percentage between 0 and 100"),
    ('{"accuracy": NaN}', "'accuracy' is nan, not a percentage"),
    ('{"accuracy": 61.2, "log": 3}', "'log' is 3, not a string or null"),
    ('{"accuracy": 61.2, "after_training": "yes"}', "'after_training' is \"yes\", not true/false"),
    ('{"accuracy": 61.2, "epoch": 2.5}', "'epoch' is 2.5, not a whole number or null"),
])
def test_a_bad_results_json_is_named_and_its_run_unfinished(tmp_path, content, says):
    seed = tmp_path / "seed1"
    write_log(str(seed), 60.0)  # the log's result does not stand in for a record that says otherwise
    (seed / RESULTS_FILE).write_text(content)
    result = read_run(str(seed))
    assert result.status == "unfinished" and result.value is None
    assert result.detail.startswith(f"{seed / RESULTS_FILE}: ") and says in result.detail
    assert result.detail.endswith("rerun the test, or delete it to use the log lines")


def make_tree(root, with_records: bool) -> None:
    """Base-to-novel runs of two trainers; every log prints its value at 0.1, results.json holds it exactly."""
    runs = {("train_base", "dtd", "MMRL", "vit_b16"): [85.04, 86.26], ("test_new", "dtd", "MMRL", "vit_b16"): [60.01, 61.49],
            ("train_base", "dtd", "MMRLpp", "vit_b16"): [84.35], ("test_new", "dtd", "MMRLpp", "vit_b16"): [62.5],
            ("train_base", "imagenet", "MMRL", "vit_b16_imagenet"): [77.61, 77.94, 78.18],
            ("test_new", "imagenet", "MMRL", "vit_b16_imagenet"): [71.04, 71.23, 71.37]}
    for (tree, dataset, trainer, cfg), values in runs.items():
        for s, value in enumerate(values, 1):
            seed = os.path.join(root, "base2new", tree, dataset, "shots_16", trainer, cfg, f"seed{s}")
            write_log(seed, value, train=tree == "train_base")
            if with_records:
                write_record(seed, {"accuracy": value, "error": 100 - value, "macro_f1": value - 5,
                                    "log": "log.txt", "after_training": tree == "train_base"})


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_results_json_gives_the_tables_of_the_log_lines(tmp_path, capsys, fmt):
    with_json, logs_only = tmp_path / "new", tmp_path / "lineage"
    make_tree(str(with_json), True)
    make_tree(str(logs_only), False)
    seed = with_json / "base2new/test_new/dtd/shots_16/MMRL/vit_b16/seed2"
    assert read_run(str(seed)).source == str(seed / RESULTS_FILE)
    assert read_run(str(logs_only / "base2new/test_new/dtd/shots_16/MMRL/vit_b16/seed2")).source.endswith("log.txt")
    for keyword in ("accuracy", "macro_f1"):
        args = ("--table", "b2n", "--format", fmt, "--keyword", keyword)
        a = run(*args, with_json, capsys=capsys).replace(str(with_json), "ROOT")
        b = run(*args, logs_only, capsys=capsys).replace(str(logs_only), "ROOT")
        assert a == b
    rows = markdown_rows(run("--table", "b2n", "--trainer", "MMRL", logs_only, capsys=capsys))
    assert rows["DTD"] == ["85.65 (2)", "60.75 (2)", "71.08"]  # mean(85.0, 86.3), mean(60.0, 61.5)


def test_an_unknown_trainer_is_an_error_naming_the_trainers_found(tmp_path, capsys):
    make_tree(str(tmp_path), False)
    assert error_of("--table", "b2n", "--trainer", "MMRL,MRLpp", tmp_path, capsys=capsys) == (
        f"Error: --trainer MRLpp: no runs of this protocol under {tmp_path}; trainers found: MMRL, MMRLpp")
    # A trainer of the project without runs yet is an empty column, not an error.
    rows = markdown_rows(run("--table", "b2n", "--trainer", "MMRL,ZeroshotCLIP", tmp_path, capsys=capsys))
    assert rows["DTD"][3:] == ["—", "—", "—"]


def test_the_scripts_read_the_same_result(tmp_path):
    resumed, truncated = tmp_path / "resumed", tmp_path / "truncated"
    resumed.mkdir()
    truncated.mkdir()
    (resumed / "log.txt").write_text(TRUNCATED)
    (resumed / "log.txt-2026-01-01-00-00-00").write_text(TRUNCATED + "Finish training\n" + result_block(80.0))
    (truncated / "log.txt").write_text(TRUNCATED + "Finish training\n")
    script = (f"source scripts/common.sh; echo \"[$(job_accuracy {resumed} train)]\"; "
              f"echo \"[$(job_accuracy {resumed} eval)]\"; echo \"[$(job_accuracy {truncated} train)]\"")
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[80.0]", "[80.0]", "[]"]


def test_a_bad_results_json_in_a_tree_leaves_the_rest_of_the_table(tmp_path, capsys):
    make_tree(str(tmp_path), True)
    seed = tmp_path / "base2new/train_base/dtd/shots_16/MMRL/vit_b16/seed2"
    record = json.loads((seed / RESULTS_FILE).read_text())
    record["accuracy"] = "86.26"
    (seed / RESULTS_FILE).write_text(json.dumps(record))
    out = run("--table", "b2n", "--trainer", "MMRL", tmp_path, capsys=capsys)
    rows = markdown_rows(out)
    assert rows["DTD"][:2] == ["85.00 (1)*", "60.75 (2)"]  # seed 2's base result is not counted
    assert rows["ImageNet"][0] == "77.90 (3)"
    assert f"- {seed / RESULTS_FILE}: 'accuracy' is \"86.26\", not a number; rerun the test" in out
