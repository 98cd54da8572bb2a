"""parse_test_res.py --plot: the few-shot and base-to-novel figures, drawn from synthetic log trees."""
import os
import subprocess
import sys

import pytest
from matplotlib.container import BarContainer  # the test extra installs matplotlib
from PIL import Image

import parse_test_res
from test_parse_test_res import write_log
from tests.train_runs import REPO, mount_tmpfs, remount_read_only, unmount


def fewshot_tree(root: str) -> None:
    """MMRL on DTD (1, 2, 4 shots, 2-3 seeds) and EuroSAT (16 shots); MMRLpp on DTD (1 shot)."""
    runs = {("dtd", 1, "MMRL"): [50.0, 52.0], ("dtd", 2, "MMRL"): [55.0, 57.0, 56.0], ("dtd", 4, "MMRL"): [60.0],
            ("eurosat", 16, "MMRL"): [90.0, 91.0], ("dtd", 1, "MMRLpp"): [51.0]}
    for (dataset, shots, trainer), values in runs.items():
        for s, value in enumerate(values, 1):
            write_log(os.path.join(root, "few_shot", dataset, f"shots_{shots}", trainer, "vit_b16_few_shot", f"seed{s}"), value)


def b2n_tree(root: str) -> None:
    for trainer, base, new in (("MMRL", [85.0, 86.0], [60.0, 62.0]), ("MMRLpp", [84.0], [63.0]), ("ZeroshotCLIP", [80.0], [65.0])):
        for tree, values in (("train_base", base), ("test_new", new)):
            for s, value in enumerate(values, 1):
                for dataset in ("dtd", "demo"):
                    cfg = "demo" if dataset == "demo" else "vit_b16"
                    write_log(os.path.join(root, "base2new", tree, dataset, "shots_16", trainer, cfg, f"seed{s}"), value,
                              train=tree == "train_base")


def draw(root, kind: str, path: str):
    table = parse_test_res.build_table(str(root), kind, None, None, "accuracy")
    return parse_test_res.save_plot(table, str(path), "accuracy")


def expected_size(n_panels: int):
    cols = min(parse_test_res.PANEL_COLUMNS, n_panels)
    rows = -(-n_panels // cols)
    w, h = parse_test_res.PANEL_SIZE
    return round(w * cols * parse_test_res.PLOT_DPI), round(h * rows * parse_test_res.PLOT_DPI)


def test_fewshot_figure(tmp_path):
    fewshot_tree(str(tmp_path))
    fig = draw(tmp_path, "fewshot", tmp_path / "fs.png")
    with Image.open(tmp_path / "fs.png") as img:
        img.verify()
    with Image.open(tmp_path / "fs.png") as img:
        assert img.format == "PNG" and img.size == expected_size(3)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["DTD", "EuroSAT", "Average"]  # one panel per dataset with results, then the average
    dtd, eurosat, average = fig.axes
    assert [line.get_label() for line in dtd.get_lines()] == ["MMRL", "MMRLpp"]
    mmrl = dtd.get_lines()[0]
    assert list(mmrl.get_xdata()) == [1, 2, 4] and list(mmrl.get_ydata()) == [51.0, 56.0, 60.0]
    # One std band per line: mean(50, 52) +- 1 at 1 shot.
    band = dtd.collections[0].get_paths()[0].vertices
    assert sorted({round(y, 6) for x, y in band if x == 1}) == [50.0, 52.0]
    assert len(dtd.collections) == 2 and [line.get_label() for line in eurosat.get_lines()] == ["MMRL"]
    assert len(average.get_lines()) == 2


def test_b2n_figure_and_formats(tmp_path, capsys):
    b2n_tree(str(tmp_path))
    fig = draw(tmp_path, "b2n", tmp_path / "b2n.png")
    with Image.open(tmp_path / "b2n.png") as img:
        assert img.format == "PNG" and img.size == expected_size(3)
    assert [ax.get_title() for ax in fig.axes] == ["DTD", "demo", "Average"]
    dtd = fig.axes[0]
    bars = [c for c in dtd.containers if isinstance(c, BarContainer)]  # one series per trainer
    # The papers' order: the zero-shot baseline first.
    assert [c.get_label() for c in bars] == ["ZeroshotCLIP", "MMRL", "MMRLpp"]
    assert all(len(c.patches) == 3 for c in bars)  # Base, New, HM
    assert [t.get_text() for t in dtd.get_xticklabels()] == ["Base", "New", "HM"]
    heights = [p.get_height() for p in bars[1].patches]
    assert heights == pytest.approx([85.5, 61.0, 2 * 85.5 * 61.0 / 146.5])
    parse_test_res.main(["--table", "b2n", "--plot", str(tmp_path / "b2n.svg"), str(tmp_path)])
    parse_test_res.main(["--table", "b2n", "--plot", str(tmp_path / "b2n.pdf"), str(tmp_path)])
    captured = capsys.readouterr()
    assert "| DTD" in captured.out and f"Figure written to {tmp_path / 'b2n.pdf'}" in captured.err
    assert (tmp_path / "b2n.pdf").read_bytes().startswith(b"%PDF")
    assert b"<svg" in (tmp_path / "b2n.svg").read_bytes()[:1000]


@pytest.mark.parametrize("argv, message", [
    (["--table", "xd", "--plot", "x.png"], "--plot draws the fewshot and b2n tables, not xd"),
    (["--table", "b2n", "--plot", "x.jpg"], "--plot x.jpg: the file name must end in .png, .pdf, .svg"),
])
def test_plot_arguments_are_checked(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        parse_test_res.main(argv + [str(tmp_path)])
    assert message in capsys.readouterr().err


def _parser(*argv, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "parse_test_res.py", *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": REPO, **(env or {})})


def test_a_figure_that_cannot_be_written_costs_only_the_figure(tmp_path):
    root = tmp_path / "out"
    b2n_tree(str(root))
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    cases = [(tmp_path / "missing" / "b2n.png", f"the folder {tmp_path / 'missing'} does not exist"),
             (blocker / "b2n.png", f"{blocker} is a file, not a folder")]
    mount = tmp_path / "ro"
    mounted = mount_tmpfs(mount, "size=1m") and remount_read_only(mount)
    if mounted:
        cases.append((mount / "b2n.png", "Read-only file system"))
    try:
        for plot, says in cases:
            done = _parser("--table", "b2n", "--plot", plot, root)
            assert done.returncode == 1 and "Traceback" not in done.stderr
            assert "| DTD" in done.stdout and "| Average" in done.stdout  # the table is printed all the same
            line = done.stderr.splitlines()[-2]
            assert line.startswith(f"Error: --plot {plot}: ") and says in line, line
            assert not os.path.exists(plot)
        debug = _parser("--table", "b2n", "--plot", cases[0][0], root, env={"MMRL_DEBUG": "1"})
        assert debug.returncode == 1 and "Traceback" in debug.stderr
    finally:
        if mounted:
            unmount(mount)
    assert blocker.read_text() == "kept"
    if not mounted:
        pytest.skip("the read-only case needs a tmpfs mount (root): the other cases passed")
