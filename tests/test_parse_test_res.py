"""parse_test_res.py: the lineage per-folder summary and the result tables, on hand-made logs."""
import csv
import io
import json
import os
from typing import Dict, List, Optional

import pytest

import parse_test_res

CONFIG_DUMP = """***************
** Arguments **
***************
eval_only: False
************
** Config **
************
DATASET:
  NAME: DescribableTextures
  NUM_SHOTS: 16
OPTIM:
  LR: 0.001
TEST:
  FINAL_MODEL: last_step
"""


def result_block(acc: float) -> str:
    return (
        "Evaluate on the *test* set\n=> result\n* total: 1,000\n* correct: {c:,}\n"
        "* accuracy: {a:.1f}%\n* error: {e:.1f}%\n* macro_f1: {f:.1f}%\n"
    ).format(c=int(acc * 10), a=acc, e=100 - acc, f=acc - 5)


def write_log(seed_dir: str, acc: Optional[float], train: bool = True, val_acc: Optional[float] = None) -> None:
    """A log as train.py writes it; ``acc`` None is a run that died before its final test."""
    os.makedirs(seed_dir, exist_ok=True)
    text = CONFIG_DUMP
    if train:
        text += "epoch [1/2] batch [5/5] time 0.1 (0.1) loss 1.2 (1.3) acc 25.0000 (25.0000) lr 1.0000e-03\n"
        if val_acc is not None:
            text += "Evaluate on the *val* set\n" + result_block(val_acc).split("\n", 1)[1]
        text += "Checkpoint saved to x/model.pth.tar-2\n"
    if acc is not None:
        if train:
            text += "Finish training\nDeploy the last-epoch model\n"
        text += result_block(acc) + "Elapsed: 0:00:03\n"
    with open(os.path.join(seed_dir, "log.txt"), "w") as f:
        f.write(text)


def run(*argv: str, capsys) -> str:
    assert parse_test_res.main(list(argv)) == 0
    return capsys.readouterr().out


def error_of(*argv: str, capsys) -> str:
    """The one error line of a parser run that fails (exit 1, no traceback)."""
    assert parse_test_res.main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("(set MMRL_DEBUG=1 to see the traceback)\n"), err
    return err.splitlines()[-2]


@pytest.fixture
def tree(tmp_path) -> str:
    """An output root with known accuracies.

    b2n, MMRL: ImageNet base 77.6/77.9/78.2, new 71.0/71.2/71.4; DTD base 85.0/86.0, new 60.0
    (seed2 crashed); EuroSAT base 95.0, no new. MMRLpp: ImageNet base 78.0, new 72.0.
    """
    root = str(tmp_path / "output")
    b2n = os.path.join(root, "base2new")
    tb, tn = os.path.join(b2n, "train_base"), os.path.join(b2n, "test_new")

    def seed(tree_dir: str, dataset: str, trainer: str, cfg: str, s: int, shots: int = 16) -> str:
        return os.path.join(tree_dir, dataset, f"shots_{shots}", trainer, cfg, f"seed{s}")

    for s, (b, n) in enumerate([(77.6, 71.0), (77.9, 71.2), (78.2, 71.4)], 1):
        write_log(seed(tb, "imagenet", "MMRL", "vit_b16_imagenet", s), b, val_acc=12.0)
        write_log(seed(tn, "imagenet", "MMRL", "vit_b16_imagenet", s), n, train=False)
    write_log(seed(tb, "dtd", "MMRL", "vit_b16", 1), 85.0)
    write_log(seed(tb, "dtd", "MMRL", "vit_b16", 2), 86.0)
    write_log(seed(tn, "dtd", "MMRL", "vit_b16", 1), 60.0, train=False)
    write_log(seed(tn, "dtd", "MMRL", "vit_b16", 2), None, train=False)
    # A later rerun (the logger's log.txt-<timestamp>) killed before its test does not hide log.txt's result.
    with open(os.path.join(seed(tb, "dtd", "MMRL", "vit_b16", 1), "log.txt-2025-01-01-00-00-00"), "w") as f:
        f.write(CONFIG_DUMP + "Evaluate on the *val* set\n")
    write_log(seed(tb, "eurosat", "MMRL", "vit_b16", 1), 95.0)
    write_log(seed(tb, "imagenet", "MMRLpp", "vit_b16_imagenet", 1), 78.0)
    write_log(seed(tn, "imagenet", "MMRLpp", "vit_b16_imagenet", 1), 72.0, train=False)

    # Cross-dataset runs share the base2new tree; their config folder keeps them apart.
    xd = "vit_b16_cross_datasets"
    write_log(seed(tb, "imagenet", "MMRL", xd, 1), 72.0)
    for dataset, acc in [("caltech101", 93.0), ("dtd", 45.0), ("imagenetv2", 64.0),
                         ("imagenet_sketch", 49.0), ("imagenet_a", 50.0), ("imagenet_r", 77.0)]:
        write_log(seed(tn, dataset, "MMRL", xd, 1), acc, train=False)

    fs = os.path.join(root, "few_shot")
    write_log(seed(fs, "dtd", "MMRL", "vit_b16_few_shot", 1, shots=1), 50.0)
    write_log(seed(fs, "dtd", "MMRL", "vit_b16_few_shot", 2, shots=1), 52.0)
    write_log(seed(fs, "dtd", "MMRL", "vit_b16_few_shot", 1, shots=16), 70.0)
    return root


def markdown_rows(out: str) -> Dict[str, List[str]]:
    rows = {}
    for line in out.splitlines():
        if line.startswith("|") and not line.startswith("|-"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


# ---------------------------------------------------------------------------------------------
# Lineage per-folder mode


def test_lineage_lines_and_parse_txt(tree, capsys):
    directory = os.path.join(tree, "base2new", "train_base", "dtd", "shots_16", "MMRL", "vit_b16") + "/"
    os.makedirs(directory + "seed3")  # no log.txt: skipped with a warning
    with pytest.warns(UserWarning, match="No file found at"):
        out = run(directory, capsys=capsys)
    # mean(85, 86) = 85.5; population std = 0.5
    expected = [
        f"file: {directory}seed1/log.txt. accuracy: 85.00%. ",
        f"file: {directory}seed2/log.txt. accuracy: 86.00%. ",
        "===",
        f"Summary of directory: {directory}",
        "* accuracy: 85.50% +- 0.50%",
        "===",
    ]
    assert out.splitlines() == [f"Parsing files in {directory}"] + expected
    with open(directory + "parse.txt") as f:
        assert f.read() == "\n".join(expected)  # no trailing newline


def test_lineage_last_result_after_signal_wins(tree, capsys):
    # ImageNet's logs hold a val block (12.0%) before the final test: the last value counts.
    directory = os.path.join(tree, "base2new", "train_base", "imagenet", "shots_16", "MMRL", "vit_b16_imagenet")
    out = run(directory, capsys=capsys)
    # mean(77.6, 77.9, 78.2) = 77.9; std = sqrt((0.09 + 0 + 0.09) / 3) = 0.2449
    assert "* accuracy: 77.90% +- 0.24%" in out.splitlines()


@pytest.mark.filterwarnings("ignore:No file found at")  # parse.txt from the first call
def test_lineage_ci95_and_keyword(tree, capsys):
    directory = os.path.join(tree, "base2new", "train_base", "dtd", "shots_16", "MMRL", "vit_b16")
    out = run(directory, "--ci95", capsys=capsys)
    # 1.96 * 0.5 / sqrt(2) = 0.693
    assert "* accuracy: 85.50% +- 0.69%" in out.splitlines()
    out = run(directory, "--keyword", "macro_f1", "--test-log", capsys=capsys)
    # macro_f1 lines are accuracy - 5: 80.0 and 81.0
    assert "* macro_f1: 80.50% +- 0.50%" in out.splitlines()


def test_lineage_multi_exp(tmp_path, capsys):
    for exp, accs in [("expA", [80.0, 90.0]), ("expB", [70.0])]:
        for s, acc in enumerate(accs, 1):
            write_log(str(tmp_path / exp / f"seed{s}"), acc)
    out = run(str(tmp_path), "--multi-exp", capsys=capsys)
    lines = out.splitlines()
    assert f"Summary of directory: {tmp_path / 'expA'}" in lines
    assert "* accuracy: 85.00% +- 5.00%" in lines
    assert "* accuracy: 70.00% +- 0.00%" in lines
    assert lines[-2:] == ["Average performance", "* accuracy: 77.50%"]  # (85 + 70) / 2


def test_lineage_nothing_found(tmp_path, capsys):
    write_log(str(tmp_path / "seed1"), None)
    assert error_of(str(tmp_path), capsys=capsys).startswith(f"Error: Nothing found in {tmp_path}")


def test_table_only_flags_refused_in_lineage_mode(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(str(tmp_path), "--std", capsys=capsys)
    assert "--std applies to --table only" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Tables


def test_b2n_markdown(tree, capsys):
    out = run("--table", "b2n", "--trainer", "MMRL", tree, capsys=capsys)
    rows = markdown_rows(out)
    assert rows["Dataset"] == ["Base", "New", "HM"]
    # HM(77.9, 71.2) = 2 * 77.9 * 71.2 / 149.1 = 74.3996
    assert rows["ImageNet"] == ["77.90 (3)", "71.20 (3)", "74.40"]
    # DTD new: seed2 crashed, so one seed, flagged (never averaged as if complete);
    # HM(85.5, 60) = 10260 / 145.5 = 70.5155
    assert rows["DTD"] == ["85.50 (2)", "60.00 (1)*", "70.52*"]
    assert "* DTD, New: mean of 1 of 2 seeds; seed2 unfinished (see Problems)" in out
    # EuroSAT has no new run: missing cells, never 0
    assert rows["EuroSAT"] == ["95.00 (1)", "—", "—"]
    assert rows["Caltech101"] == ["—", "—", "—"]
    # Average over the datasets with results, flagged: base (77.9 + 85.5 + 95) / 3 = 86.1333,
    # new (71.2 + 60) / 2 = 65.6, HM = 2 * 86.1333 * 65.6 / 151.7333 = 74.4772
    assert rows["Average"] == ["86.13*", "65.60*", "74.48*"]
    order = [name for name in rows if name != "Dataset"]
    assert order == ["ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "Flowers102", "Food101",
                     "FGVCAircraft", "SUN397", "DTD", "EuroSAT", "UCF101", "Average"]
    assert "* Average, Base: over 3 of 11 datasets (the others have no results)" in out
    assert "* Average, New: over 2 of 11 datasets (the others have no results)" in out
    problems = out.split("Problems (runs without a result, not counted):")[1]
    assert "test_new/dtd/shots_16/MMRL/vit_b16/seed2/log.txt: no '* accuracy' line after '=> result'" in problems


def test_b2n_std_and_trainers_side_by_side(tree, capsys):
    out = run("--table", "b2n", "--trainer", "MMRL", "--trainer", "MMRLpp", "--std", tree, capsys=capsys)
    rows = markdown_rows(out)
    assert rows["Dataset"] == ["MMRL Base", "MMRL New", "MMRL HM", "MMRLpp Base", "MMRLpp New", "MMRLpp HM"]
    # HM(78, 72) = 11232 / 150 = 74.88
    assert rows["ImageNet"] == ["77.90 ± 0.24 (3)", "71.20 ± 0.16 (3)", "74.40", "78.00 ± 0.00 (1)", "72.00 ± 0.00 (1)", "74.88"]
    assert rows["DTD"][3:] == ["—", "—", "—"]
    # Comma-separated and default (every trainer found) give the same columns.
    assert markdown_rows(run("--table", "b2n", "--trainer", "MMRL,MMRLpp", "--std", tree, capsys=capsys)) == rows
    assert markdown_rows(run("--table", "b2n", "--std", tree, capsys=capsys)) == rows


def test_b2n_csv(tree, capsys):
    parse_test_res.main(["--table", "b2n", "--trainer", "MMRL", "--format", "csv", tree])
    captured = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(captured.out)))
    assert rows[0] == ["Dataset", "Base", "New", "HM"]
    assert ["ImageNet", "77.90 (3)", "71.20 (3)", "74.40"] in rows
    assert ["EuroSAT", "95.00 (1)", "—", "—"] in rows
    assert rows[-1] == ["Average", "86.13*", "65.60*", "74.48*"]
    # Footnotes and problems go to stderr so that stdout stays a valid csv file.
    assert "over 3 of 11 datasets" in captured.err and "seed2/log.txt" in captured.err


def test_b2n_json(tree, capsys):
    data = json.loads(run("--table", "b2n", "--trainer", "MMRL", "--format", "json", tree, capsys=capsys))
    rows = {row["dataset"]: row["cells"]["MMRL"] for row in data["rows"]}
    imagenet = rows["imagenet"]
    assert imagenet["Base"]["mean"] == pytest.approx(77.9)
    assert imagenet["Base"]["n"] == 3
    assert imagenet["Base"]["seeds"] == {"seed1": 77.6, "seed2": 77.9, "seed3": 78.2}
    assert imagenet["HM"]["mean"] == pytest.approx(2 * 77.9 * 71.2 / 149.1)
    assert rows["eurosat"]["New"] is None and rows["eurosat"]["HM"] is None
    avg = rows["average"]
    assert avg["Base"] == {"mean": pytest.approx(258.4 / 3), "incomplete": True, "datasets": 3, "of": 11}
    assert avg["New"]["mean"] == pytest.approx(65.6)
    assert len(data["problems"]) == 1 and "seed2" in data["problems"][0]


def test_b2n_latex(tree, capsys):
    out = run("--table", "b2n", "--trainer", "MMRL", "--format", "latex", tree, capsys=capsys)
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "\\begin{tabular}{llll}" in lines
    assert "ImageNet & 77.90 (3) & 71.20 (3) & 74.40 \\\\" in lines
    assert "DTD & 85.50 (2) & 60.00 (1)* & 70.52* \\\\" in lines
    assert "EuroSAT & 95.00 (1) & — & — \\\\" in lines
    assert "Average & 86.13* & 65.60* & 74.48* \\\\" in lines
    assert any(line.startswith("% - ") and "seed2" in line for line in lines)


def test_b2n_complete_average_is_not_flagged(tmp_path, capsys):
    root = tmp_path / "output"
    for dataset, (b, n) in zip(parse_test_res.protocol_datasets("b2n"), [(80.0, 70.0)] * 10 + [(90.0, 60.0)]):
        cfg = "vit_b16_imagenet" if dataset == "imagenet" else "vit_b16"
        write_log(str(root / "base2new/train_base" / dataset / "shots_16/MMRL" / cfg / "seed1"), b)
        write_log(str(root / "base2new/test_new" / dataset / "shots_16/MMRL" / cfg / "seed1"), n, train=False)
    rows = markdown_rows(run("--table", "b2n", str(root), capsys=capsys))
    # base (10 * 80 + 90) / 11 = 80.909, new (10 * 70 + 60) / 11 = 69.0909,
    # HM = 2 * 80.909 * 69.0909 / 150 = 74.5344
    assert rows["Average"] == ["80.91", "69.09", "74.53"]


def test_fewshot_table(tree, capsys):
    rows = markdown_rows(run("--table", "fewshot", tree, capsys=capsys))
    assert rows["Dataset"] == ["1", "2", "4", "8", "16"]
    assert rows["DTD"] == ["51.00 (2)", "—", "—", "—", "70.00 (1)"]  # mean(50, 52) = 51
    assert rows["Average"] == ["51.00*", "—", "—", "—", "70.00*"]


def test_xd_and_dg_tables(tree, capsys):
    rows = markdown_rows(run("--table", "xd", tree, capsys=capsys))
    assert rows["ImageNet (source)"] == ["72.00 (1)"]
    assert rows["Caltech101"] == ["93.00 (1)"] and rows["DTD"] == ["45.00 (1)"]
    assert rows["EuroSAT"] == ["—"]
    assert rows["Average"] == ["69.00*"]  # (93 + 45) / 2, 2 of 10 targets
    assert "ImageNetV2" not in rows
    rows = markdown_rows(run("--table", "dg", tree, capsys=capsys))
    # (64 + 49 + 50 + 77) / 4 = 60: every variant present, so no flag
    assert rows == {
        "Dataset": ["Accuracy"],
        "ImageNet (source)": ["72.00 (1)"],
        "ImageNetV2": ["64.00 (1)"],
        "ImageNet-Sketch": ["49.00 (1)"],
        "ImageNet-A": ["50.00 (1)"],
        "ImageNet-R": ["77.00 (1)"],
        "Average": ["60.00"],
    }


def test_demo_rows_after_the_benchmark(tmp_path, capsys):
    root = tmp_path / "output"
    write_log(str(root / "base2new/train_base/demo/shots_16/MMRL/demo/seed1"), 48.6)
    write_log(str(root / "base2new/test_new/demo/shots_16/MMRL/demo/seed1"), 25.7, train=False)
    write_log(str(root / "base2new/train_base/demo/shots_16/MMRL/demo_cross_datasets/seed1"), 40.0)
    write_log(str(root / "base2new/test_new/demo/shots_16/MMRL/demo_cross_datasets/seed1"), 30.0, train=False)
    out = run("--table", "b2n", str(root), capsys=capsys)
    rows = markdown_rows(out)
    # HM(48.6, 25.7) = 2498.04 / 74.3 = 33.621; the demo is not part of the benchmark average
    assert list(rows)[-2:] == ["Average", "demo"]
    assert rows["demo"] == ["48.60 (1)", "25.70 (1)", "33.62"]
    assert rows["Average"] == ["—", "—", "—"]
    rows = markdown_rows(run("--table", "xd", str(root), capsys=capsys))
    assert rows["demo (source)"] == ["40.00 (1)"] and rows["demo"] == ["30.00 (1)"]


def test_ambiguous_config_folder_needs_cfg(tree, capsys):
    write_log(os.path.join(tree, "base2new/train_base/dtd/shots_16/MMRL/my_cfg/seed1"), 10.0)
    out = run("--table", "b2n", "--trainer", "MMRL", tree, capsys=capsys)
    assert markdown_rows(out)["DTD"][0] == "—"
    assert "several config folders (my_cfg, vit_b16); choose one with --cfg" in out
    rows = markdown_rows(run("--table", "b2n", "--trainer", "MMRL", "--cfg", "my_cfg", tree, capsys=capsys))
    assert rows["DTD"] == ["10.00 (1)", "—", "—"]


def test_missing_output_root(tmp_path, capsys):
    assert error_of("--table", "b2n", str(tmp_path / "nope"), capsys=capsys) == (
        f"Error: {tmp_path / 'nope'} is not a folder: give the output root that holds base2new/ and few_shot/")
