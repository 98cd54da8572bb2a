"""Collect test results from run folders.

Two modes.

Per-folder summary (the lineage's behaviour)::

    python parse_test_res.py DIR [--ci95] [--test-log] [--multi-exp] [--keyword accuracy]

Every non-hidden sub-folder of DIR (one per seed) is read through ``mmrl.results``: its
``results.json`` when present, otherwise the value of ``* <keyword>: X%`` in the lines after the
first line that reads ``=> result``, the last such line winning (so a training run reports its
final test, not a validation pass), in the newest of its logs that holds one (a rerun keeps
``log.txt`` and writes ``log.txt-<timestamp>``).
Prints one line per file, then the mean and the population standard deviation (or the 95%
confidence half-width 1.96*std/sqrt(n) with ``--ci95``), and writes the same lines to
``DIR/parse.txt``. Sub-folders without a ``log.txt`` are skipped with a warning.
``--multi-exp`` does this for every sub-folder of DIR, then prints the mean of the means.
``--test-log`` is accepted for compatibility and changes nothing.

Result tables over the output tree written by the scripts in ``scripts/``::

    python parse_test_res.py --table b2n|fewshot|xd|dg [--trainer NAME] [--cfg NAME]
                             [--format markdown|csv|json|latex] [--std] [OUTPUT_ROOT]

OUTPUT_ROOT (default ``output``) holds::

    base2new/train_base/<dataset>/shots_16/<trainer>/<cfg>/seed<S>/log.txt
    base2new/test_new/<dataset>/shots_16/<trainer>/<cfg>/seed<S>/log.txt
    few_shot/<dataset>/shots_<K>/<trainer>/<cfg>/seed<S>/log.txt

Cross-dataset runs live in the base2new tree too (as in the lineage): the source in
train_base, the targets in test_new, under a config folder whose name ends in
``cross_datasets``; base-to-novel and few-shot runs use the other config folders. When a
trainer folder holds several candidate config folders, pass ``--cfg``.

A cell is the mean over seeds of the final test accuracy of each seed folder (read as in the
per-folder mode, at the log line's precision whatever the source) with the seed count, e.g.
``82.69 (3)``; ``--std`` adds the population std (``82.69 ± 0.41 (3)``). A cell some of whose
seed folders have no result yet is marked ``*`` and explained in a footnote.
b2n: Base from the train_base runs (their final test), New from the test_new runs, HM the
harmonic mean of the two seed means. The Average row is the mean over the benchmark datasets
(for b2n: mean Base, mean New, and the HM of those two, as the papers do; for xd/dg: over the
targets only). A missing cell is ``—``; an average over incomplete data is marked ``*`` and
explained in a footnote. Seed folders without a result (crashed or unfinished runs) are listed
under "Problems" after the table, never counted as 0. Datasets outside the benchmark (e.g. the
demo) get rows after the Average. Footnotes and problems follow the table in markdown, are
``%`` comments in latex, go to stderr with csv (so stdout stays a csv file), and are the
``notes`` and ``problems`` lists of the json, whose cells hold mean, std, n and per-seed values.
A ``--trainer`` name found nowhere under the protocol's tree (and not one of the project's
trainers) is an error that lists the trainers found.

Figures (matplotlib, ``pip install -e ".[plot]"``)::

    python parse_test_res.py --table fewshot --plot fewshot.png [OUTPUT_ROOT]
    python parse_test_res.py --table b2n --plot b2n.pdf [OUTPUT_ROOT]

fewshot: accuracy vs shots, one panel per dataset plus the average, one line per trainer, the
mean over seeds with a band of one std; b2n: grouped bars of Base / New / HM per dataset and
trainer. The format follows the file name (.png, .pdf, .svg); the table is printed as well.
"""
import argparse
import csv
import functools
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tabulate import tabulate

from mmrl.cli import BASIC_ERRORS, UserError, check_output_file, run_main
from mmrl.results import read_run

MISSING = "—"
CROSS_SUFFIX = "cross_datasets"
SHOTS = (1, 2, 4, 8, 16)
B2N_SHOTS = 16

SOURCE = "imagenet"


# The datasets of each table, their names there and the trainers come from the registries (the
# dataset classes declare their protocols, table order and display names): a dataset or trainer
# added as a file appears in the tables without an edit here. Read on first use: the registries
# import torch, which the per-folder (lineage) mode does not need.
@functools.lru_cache(maxsize=None)
def protocol_datasets(protocol: str) -> Tuple[str, ...]:
    """Dataset yaml stems of a protocol (b2n, xd, dg) in the order of the papers' tables."""
    from mmrl.registry import protocol_datasets as listed

    return tuple(listed(protocol, order="table"))


@functools.lru_cache(maxsize=None)
def _display_names() -> Dict[str, str]:
    from mmrl.registry import dataset_classes, display_name

    return {stem: display_name(stem, cls) for stem, cls in dataset_classes().items()}


@functools.lru_cache(maxsize=None)
def known_trainers() -> Tuple[str, ...]:
    from mmrl.registry import trainer_names

    return tuple(trainer_names())


TABLES = ("b2n", "fewshot", "xd", "dg")
FORMATS = ("markdown", "csv", "json", "latex")


# ---------------------------------------------------------------------------------------------
# Reading one log


def subfolders(directory: str) -> List[str]:
    """Non-hidden entries of ``directory`` that are folders, sorted."""
    return sorted(
        name for name in os.listdir(directory)
        if not name.startswith(".") and os.path.isdir(os.path.join(directory, name))
    )


# ---------------------------------------------------------------------------------------------
# Lineage mode


def ci95(values: Sequence[float]) -> float:
    return 1.96 * float(np.std(values)) / math.sqrt(len(values))


def summarize_directory(directory: str, keyword: str, use_ci95: bool) -> float:
    """Print and save (``directory/parse.txt``) the per-seed values and their summary; return the mean."""
    # Imported here: the engine's helpers pull in torch, which the table mode does not need.
    from mmrl.dassl.utils.tools import check_isfile, listdir_nohidden

    print(f"Parsing files in {directory}")
    lines = []
    values = []
    # Every entry is tried, files included (parse.txt warns and is skipped), as in the lineage.
    for name in listdir_nohidden(directory, sort=True):
        result = read_run(os.path.join(directory, name), keyword)
        if result.status == "missing":
            check_isfile(os.path.join(directory, name, "log.txt"))
            continue
        if not result.finished:
            print(f"Unfinished: {result.detail}", file=sys.stderr)
            continue
        value = result.value
        line = f"file: {result.log or result.source}. {keyword}: {value:.2f}%. "
        print(line)
        lines.append(line)
        values.append(value)
    if not values:
        raise UserError(f"Nothing found in {directory}: no seed folder holds a result")
    mean = float(np.mean(values))
    spread = ci95(values) if use_ci95 else float(np.std(values))
    summary = ["===", f"Summary of directory: {directory}", f"* {keyword}: {mean:.2f}% +- {spread:.2f}%", "==="]
    for line in summary:
        print(line)
    with open(os.path.join(directory, "parse.txt"), "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines) + "\n".join(summary))
    return mean


def run_lineage(args: argparse.Namespace) -> None:
    if not os.path.isdir(args.directory):
        raise UserError(f"{args.directory} is not a folder: give the folder that holds the seed folders")
    if not args.multi_exp:
        summarize_directory(args.directory, args.keyword, args.ci95)
        return
    means = [
        summarize_directory(os.path.join(args.directory, name), args.keyword, args.ci95)
        for name in subfolders(args.directory)
    ]
    if not means:
        raise UserError(f"Nothing found in {args.directory}: it holds no experiment folders")
    print("Average performance")
    print(f"* {args.keyword}: {float(np.mean(means)):.2f}%")


# ---------------------------------------------------------------------------------------------
# Tables: what a cell holds


@dataclass
class SeedStats:
    """The per-seed values found in one run folder (``.../<trainer>/<cfg>``)."""

    folder: str
    values: Dict[str, float] = field(default_factory=dict)  # seed folder name -> value
    unfinished: List[str] = field(default_factory=list)  # seed folders without a result yet

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def incomplete(self) -> bool:
        return bool(self.unfinished)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values())))

    @property
    def std(self) -> float:
        return float(np.std(list(self.values.values())))


@dataclass
class Derived:
    """A value computed from other cells (an average over datasets, a harmonic mean)."""

    mean: float
    incomplete: bool = False
    used: int = 0  # datasets that entered an average (0 for a harmonic mean)
    expected: int = 0


Cell = Optional[object]  # SeedStats | Derived | None (missing)


def harmonic_mean(base: float, new: float) -> float:
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


def average(cells: Sequence[Cell]) -> Optional[Derived]:
    """The mean of the cells that have a value; incomplete when some are missing."""
    present = [c for c in cells if c is not None]
    if not present:
        return None
    incomplete = len(present) < len(cells) or any(c.incomplete for c in present)
    return Derived(float(np.mean([c.mean for c in present])), incomplete=incomplete, used=len(present),
                   expected=len(cells))


def hm_cell(base: Cell, new: Cell) -> Optional[Derived]:
    if base is None or new is None:
        return None
    return Derived(harmonic_mean(base.mean, new.mean), incomplete=base.incomplete or new.incomplete)


def cell_text(cell: Cell, show_std: bool) -> str:
    if cell is None:
        return MISSING
    if isinstance(cell, SeedStats):
        spread = f" ± {cell.std:.2f}" if show_std else ""
        return f"{cell.mean:.2f}{spread} ({cell.n}){'*' if cell.incomplete else ''}"
    return f"{cell.mean:.2f}{'*' if cell.incomplete else ''}"


def cell_json(cell: Cell) -> Optional[dict]:
    if cell is None:
        return None
    if isinstance(cell, SeedStats):
        out = {"mean": cell.mean, "std": cell.std, "n": cell.n, "seeds": dict(cell.values)}
        if cell.unfinished:
            out["unfinished"] = list(cell.unfinished)
        return out
    out = {"mean": cell.mean, "incomplete": cell.incomplete}
    if cell.expected:
        out.update(datasets=cell.used, of=cell.expected)
    return out


# ---------------------------------------------------------------------------------------------
# Tables: finding the runs


class Collector:
    """Reads run folders under an output root and remembers what went wrong on the way."""

    def __init__(self, root: str, keyword: str, cfg: Optional[str]):
        self.root = root
        self.keyword = keyword
        self.cfg = cfg
        self.problems: List[str] = []

    def cfg_folder(self, trainer_dir: str, cross: bool) -> Optional[str]:
        """The config folder of a protocol under ``<dataset>/shots_K/<trainer>``."""
        if not os.path.isdir(trainer_dir):
            return None
        if self.cfg:
            path = os.path.join(trainer_dir, self.cfg)
            return path if os.path.isdir(path) else None
        names = [n for n in subfolders(trainer_dir) if n.endswith(CROSS_SUFFIX) == cross]
        if len(names) > 1:
            self.problems.append(
                f"{trainer_dir}: several config folders ({', '.join(names)}); choose one with --cfg"
            )
            return None
        return os.path.join(trainer_dir, names[0]) if names else None

    def seeds(self, run_dir: Optional[str]) -> Optional[SeedStats]:
        """The values of every seed folder of a run; None when none has a value."""
        if run_dir is None:
            return None
        stats = SeedStats(run_dir)
        for seed in subfolders(run_dir):
            result = read_run(os.path.join(run_dir, seed), self.keyword)
            self.problems.extend(result.notes)
            if not result.finished:
                self.problems.append(result.detail)
                if result.status == "unfinished":
                    stats.unfinished.append(seed)
                continue
            stats.values[seed] = result.value
        return stats if stats.n else None

    def run(self, parts: Sequence[str], trainer: str, cross: bool) -> Optional[SeedStats]:
        """``parts`` lead from the root to the trainer folder's parent (e.g. few_shot/dtd/shots_4)."""
        trainer_dir = os.path.join(self.root, *parts, trainer)
        return self.seeds(self.cfg_folder(trainer_dir, cross))

    def trainers_under(self, dataset_parents: Sequence[Tuple[str, ...]], cross: bool) -> List[str]:
        """Trainer folders that hold a run of the protocol, under any of the given parents."""
        found = set()
        for parts in dataset_parents:
            parent = os.path.join(self.root, *parts)
            if not os.path.isdir(parent):
                continue
            for trainer in subfolders(parent):
                trainer_dir = os.path.join(parent, trainer)
                if any(n.endswith(CROSS_SUFFIX) == cross for n in subfolders(trainer_dir)):
                    found.add(trainer)
        known = [t for t in known_trainers() if t in found]
        return known + sorted(found - set(known))

    def chosen_trainers(self, given: Optional[List[str]], dataset_parents: Sequence[Tuple[str, ...]],
                        cross: bool) -> List[str]:
        """The ``--trainer`` names, or every trainer found; a name that is neither found nor one of the
        project's trainers (a typo) ends the parse with the names found."""
        found = self.trainers_under(dataset_parents, cross)
        if not given:
            return found
        unknown = [t for t in given if t not in found and t not in known_trainers()]
        if unknown:
            raise UserError(f"--trainer {', '.join(unknown)}: no runs of this protocol under {self.root}; "
                     f"trainers found: {', '.join(found) or 'none'}")
        return given

    def datasets_under(self, parts: Sequence[str], shots_folder: str, cross: bool) -> List[str]:
        """Datasets under ``root/parts`` that hold a run of the protocol (any trainer)."""
        tree = os.path.join(self.root, *parts)
        if not os.path.isdir(tree):
            return []
        found = []
        for dataset in subfolders(tree):
            shots_dir = os.path.join(tree, dataset, shots_folder)
            if os.path.isdir(shots_dir) and self.trainers_under([(*parts, dataset, shots_folder)], cross):
                found.append(dataset)
        return found


def display(dataset: str) -> str:
    return _display_names().get(dataset, dataset)


# ---------------------------------------------------------------------------------------------
# Tables: layout


@dataclass
class Table:
    """Rows of labelled cells; ``columns`` are (trainer, metric) pairs."""

    kind: str
    title: str
    trainers: List[str]
    metrics: List[str]
    rows: List[Tuple[str, str, Dict[Tuple[str, str], Cell]]] = field(default_factory=list)  # (key, label, cells)
    notes: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def columns(self) -> List[Tuple[str, str]]:
        return [(t, m) for t in self.trainers for m in self.metrics]

    def headers(self) -> List[str]:
        if len(self.trainers) == 1:
            return ["Dataset"] + self.metrics
        return ["Dataset"] + [f"{t} {m}" for t, m in self.columns]

    def text_rows(self, show_std: bool) -> List[List[str]]:
        return [[label] + [cell_text(cells.get(col), show_std) for col in self.columns] for _, label, cells in self.rows]

    def note_incomplete(self, label: str) -> None:
        """Explain in a footnote every incomplete cell: unfinished seeds anywhere, incomplete averages
        in the row ``label``."""
        for key, row_label, cells in self.rows:
            for (trainer, metric), cell in cells.items():
                what = f"{trainer} {metric}" if len(self.trainers) > 1 else metric
                if isinstance(cell, SeedStats) and cell.incomplete:
                    self.notes.append(
                        f"* {row_label}, {what}: mean of {cell.n} of {cell.n + len(cell.unfinished)} seeds; "
                        f"{', '.join(cell.unfinished)} unfinished (see Problems)"
                    )
                if row_label != label or not isinstance(cell, Derived) or not cell.incomplete:
                    continue
                if cell.expected and cell.used < cell.expected:
                    self.notes.append(
                        f"* {label}, {what}: over {cell.used} of {cell.expected} datasets (the others have no results)"
                    )
                elif cell.expected:
                    self.notes.append(f"* {label}, {what}: includes cells with unfinished seeds")
                else:
                    self.notes.append(f"* {label}, {what}: computed from incomplete averages")


def b2n_table(col: Collector, trainers: Optional[List[str]]) -> Table:
    shots = f"shots_{B2N_SHOTS}"
    base_tree, new_tree = ("base2new", "train_base"), ("base2new", "test_new")
    datasets = list(protocol_datasets("b2n"))
    extras = sorted(
        set(col.datasets_under(base_tree, shots, False) + col.datasets_under(new_tree, shots, False)) - set(datasets)
    )
    parents = [(*tree, d, shots) for tree in (base_tree, new_tree) for d in datasets + extras]
    trainers = col.chosen_trainers(trainers, parents, cross=False)
    table = Table("b2n", "Base-to-novel generalisation", trainers, ["Base", "New", "HM"])

    per_dataset = {}
    for dataset in datasets + extras:
        cells: Dict[Tuple[str, str], Cell] = {}
        for t in trainers:
            base = col.run((*base_tree, dataset, shots), t, cross=False)
            new = col.run((*new_tree, dataset, shots), t, cross=False)
            cells[(t, "Base")], cells[(t, "New")], cells[(t, "HM")] = base, new, hm_cell(base, new)
        per_dataset[dataset] = cells
    avg: Dict[Tuple[str, str], Cell] = {}
    for t in trainers:
        for metric in ("Base", "New"):
            avg[(t, metric)] = average([per_dataset[d][(t, metric)] for d in datasets])
        avg[(t, "HM")] = hm_cell(avg[(t, "Base")], avg[(t, "New")])
    add_benchmark_rows(table, datasets, extras, per_dataset, avg)
    return table


def add_benchmark_rows(table: "Table", datasets: List[str], extras: List[str],
                       per_dataset: Dict[str, Dict[Tuple[str, str], Cell]], avg: Dict[Tuple[str, str], Cell]) -> None:
    """The papers' datasets, their Average row, then the other datasets found (not averaged)."""
    for dataset in datasets:
        table.rows.append((dataset, display(dataset), per_dataset[dataset]))
    table.rows.append(("average", "Average", avg))
    for dataset in extras:
        table.rows.append((dataset, display(dataset), per_dataset[dataset]))
    table.note_incomplete("Average")
    if extras:
        table.notes.append(f"Average: over the {len(datasets)} benchmark datasets; {', '.join(extras)} not included")


def fewshot_table(col: Collector, trainers: Optional[List[str]]) -> Table:
    tree = ("few_shot",)
    datasets = list(protocol_datasets("b2n"))
    found = set()
    for k in SHOTS:
        found.update(col.datasets_under(tree, f"shots_{k}", False))
    extras = sorted(found - set(datasets))
    parents = [(*tree, d, f"shots_{k}") for d in datasets + extras for k in SHOTS]
    trainers = col.chosen_trainers(trainers, parents, cross=False)
    metrics = [str(k) for k in SHOTS]
    table = Table("fewshot", "Few-shot learning (columns: shots per class)", trainers, metrics)
    per_dataset = {
        d: {(t, str(k)): col.run((*tree, d, f"shots_{k}"), t, cross=False) for t in trainers for k in SHOTS}
        for d in datasets + extras
    }
    avg = {c: average([per_dataset[d][c] for d in datasets]) for c in table.columns}
    add_benchmark_rows(table, datasets, extras, per_dataset, avg)
    return table


def transfer_table(col: Collector, trainers: Optional[List[str]], kind: str) -> Table:
    """Cross-dataset (``xd``) or domain generalisation (``dg``): source ImageNet, then its targets."""
    shots = f"shots_{B2N_SHOTS}"
    base_tree, new_tree = ("base2new", "train_base"), ("base2new", "test_new")
    targets = list(protocol_datasets(kind))
    extras: List[str] = []
    extra_sources: List[str] = []
    if kind == "xd":
        # Runs on other datasets (e.g. the demo, which is its own source and target).
        known = {SOURCE, *protocol_datasets("xd"), *protocol_datasets("dg")}
        extra_sources = sorted(set(col.datasets_under(base_tree, shots, True)) - known)
        extras = sorted(set(extra_sources + col.datasets_under(new_tree, shots, True)) - known)
    parents = [(*base_tree, d, shots) for d in [SOURCE] + extras] + [(*new_tree, d, shots) for d in targets + extras]
    trainers = col.chosen_trainers(trainers, parents, cross=True)
    title = "Cross-dataset transfer" if kind == "xd" else "Domain generalisation"
    table = Table(kind, f"{title} (trained on ImageNet)", trainers, ["Accuracy"])

    def row(key: str, label: str, tree: Tuple[str, str], dataset: str) -> Dict[Tuple[str, str], Cell]:
        cells = {(t, "Accuracy"): col.run((*tree, dataset, shots), t, cross=True) for t in trainers}
        table.rows.append((key, label, cells))
        return cells

    row(SOURCE, f"{display(SOURCE)} (source)", base_tree, SOURCE)
    target_cells = [row(d, display(d), new_tree, d) for d in targets]
    avg = {c: average([cells[c] for cells in target_cells]) for c in table.columns}
    table.rows.append(("average", "Average", avg))
    for dataset in extras:
        if dataset in extra_sources:
            row(f"{dataset}:source", f"{display(dataset)} (source)", base_tree, dataset)
        row(dataset, display(dataset), new_tree, dataset)
    table.note_incomplete("Average")
    excluded = "the source and the datasets below it excluded" if extras else "the source excluded"
    table.notes.append(f"Average: over the {len(targets)} target datasets, {excluded}")
    return table


def build_table(root: str, kind: str, trainers: Optional[List[str]], cfg: Optional[str], keyword: str) -> Table:
    if not os.path.isdir(root):
        raise UserError(f"{root} is not a folder: give the output root that holds base2new/ and few_shot/")
    col = Collector(root, keyword, cfg)
    if kind == "b2n":
        table = b2n_table(col, trainers)
    elif kind == "fewshot":
        table = fewshot_table(col, trainers)
    else:
        table = transfer_table(col, trainers, kind)
    table.problems = col.problems
    if not table.trainers:
        table.notes.append(f"No runs of this protocol found under {root}")
    return table


# ---------------------------------------------------------------------------------------------
# Tables: output


def render(table: Table, fmt: str, show_std: bool, keyword: str, root: str) -> Tuple[str, str]:
    """The table in ``fmt``, and the text that goes to stderr (csv only: notes and problems)."""
    if fmt == "json":
        payload = {
            "table": table.kind,
            "title": table.title,
            "output_root": root,
            "metric": keyword,
            "trainers": table.trainers,
            "columns": table.metrics,
            "rows": [
                {
                    "dataset": key,
                    "name": label,
                    "cells": {t: {m: cell_json(cells.get((t, m))) for m in table.metrics} for t in table.trainers},
                }
                for key, label, cells in table.rows
            ],
            "notes": table.notes,
            "problems": table.problems,
        }
        return json.dumps(payload, indent=2, ensure_ascii=False), ""

    rows = table.text_rows(show_std)
    headers = table.headers()
    trailer = list(table.notes)
    if table.problems:
        trailer.append("Problems (runs without a result, not counted):")
        trailer.extend(f"- {p}" for p in table.problems)

    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n"), "\n".join(trailer)

    legend = "seed count in parentheses" + (", ± population std over seeds" if show_std else "")
    if fmt == "latex":
        body = tabulate(rows, headers=headers, tablefmt="latex", disable_numparse=True)
        lines = [f"% {table.title}: {keyword} (%), {legend}", body] + [f"% {line}" for line in trailer]
        return "\n".join(lines), ""
    body = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    lines = [f"{table.title}: {keyword} (%), {legend}", "", body]
    if trailer:
        lines += [""] + trailer
    return "\n".join(lines), ""


def run_table(args: argparse.Namespace) -> None:
    trainers = None
    if args.trainer:
        trainers = [t for value in args.trainer for t in value.split(",") if t]
    table = build_table(args.directory or "output", args.table, trainers, args.cfg, args.keyword)
    out, err = render(table, args.format, args.std, args.keyword, args.directory or "output")
    print(out, flush=True)
    if err:
        print(err, file=sys.stderr)
    if args.plot:
        # The table is out first: a figure that cannot be written costs only the figure.
        check_output_file(args.plot, "--plot", create_folder=False)
        save_plot(table, args.plot, args.keyword)
        print(f"Figure written to {args.plot}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Figures


PLOT_FORMATS = (".png", ".pdf", ".svg")
PLOT_TABLES = ("fewshot", "b2n")
PLOT_DPI = 100
PANEL_SIZE = (3.2, 2.6)  # inches per panel
PANEL_COLUMNS = 4


def plot_panels(table: Table) -> List[Tuple[str, Dict[Tuple[str, str], Cell]]]:
    """(label, cells) of the rows that have a value: the datasets, then the Average."""
    rows = [(label, cells) for key, label, cells in table.rows if key != "average" and any(cells.values())]
    rows += [(label, cells) for key, label, cells in table.rows if key == "average" and any(cells.values())]
    return rows


def _figure(n_panels: int) -> Tuple[Any, List[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(PANEL_COLUMNS, n_panels)
    rows = math.ceil(n_panels / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, axes[:n_panels]


def _spread(cell: Cell) -> float:
    return cell.std if isinstance(cell, SeedStats) else 0.0


def plot_fewshot(table: Table, keyword: str) -> Any:
    """Accuracy vs shots: one panel per dataset and the Average, one line per trainer (mean over
    seeds) with a band of one std."""
    panels = plot_panels(table)
    fig, axes = _figure(len(panels))
    for ax, (label, cells) in zip(axes, panels):
        for trainer in table.trainers:
            points = [(int(m), cells[(trainer, m)]) for m in table.metrics if cells.get((trainer, m)) is not None]
            if not points:
                continue
            shots = [k for k, _ in points]
            mean = np.array([c.mean for _, c in points])
            std = np.array([_spread(c) for _, c in points])
            (line,) = ax.plot(shots, mean, marker="o", label=trainer)
            ax.fill_between(shots, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks([int(m) for m in table.metrics], labels=table.metrics)
        ax.set_title(label)
        ax.set_xlabel("shots per class")
        ax.set_ylabel(f"{keyword} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return fig


def plot_b2n(table: Table, keyword: str) -> Any:
    """Grouped bars: for each dataset and the Average, Base / New / HM with one bar per trainer
    (error bars: one std over seeds)."""
    panels = plot_panels(table)
    fig, axes = _figure(len(panels))
    width = 0.8 / len(table.trainers)
    x = np.arange(len(table.metrics))
    for ax, (label, cells) in zip(axes, panels):
        for i, trainer in enumerate(table.trainers):
            values = [cells.get((trainer, m)) for m in table.metrics]
            heights = [c.mean if c is not None else np.nan for c in values]
            # No error bar where there is no spread to show (one seed, or a harmonic mean).
            errors = [c.std if isinstance(c, SeedStats) and c.n > 1 else np.nan for c in values]
            ax.bar(x - 0.4 + width * (i + 0.5), heights, width, yerr=errors, label=trainer, capsize=2)
        ax.set_xticks(x, labels=table.metrics)
        ax.set_ylim(0, 100)
        ax.set_title(label)
        ax.set_ylabel(f"{keyword} (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    return fig


def save_plot(table: Table, path: str, keyword: str) -> Any:
    """Draw the figure of a fewshot or b2n table and write it to ``path`` (.png, .pdf, .svg)."""
    if not plot_panels(table):
        raise UserError(f"--plot {path}: the {table.kind} table has no results to draw")
    fig = (plot_fewshot if table.kind == "fewshot" else plot_b2n)(table, keyword)
    fig.suptitle(table.title)
    fig.tight_layout()
    fig.savefig(path, dpi=PLOT_DPI)
    return fig


def check_plot_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.table not in PLOT_TABLES:
        parser.error(f"--plot draws the {' and '.join(PLOT_TABLES)} tables, not {args.table}")
    if os.path.splitext(args.plot)[1].lower() not in PLOT_FORMATS:
        parser.error(f"--plot {args.plot}: the file name must end in {', '.join(PLOT_FORMATS)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError('--plot needs matplotlib: pip install matplotlib (or pip install -e ".[plot]")') from None


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "directory", nargs="?",
        help="per-folder mode: the folder holding the seed folders (required); "
        "table mode: the output root holding base2new/ and few_shot/ (default: output)",
    )
    parser.add_argument("--keyword", default="accuracy", help="metric of the '* <keyword>: X%%' lines (accuracy, error, macro_f1)")
    lineage = parser.add_argument_group("per-folder mode")
    lineage.add_argument("--ci95", action="store_true", help="report the 95%% confidence half-width instead of the std")
    lineage.add_argument("--test-log", action="store_true", help="accepted for compatibility; results are always read after '=> result'")
    lineage.add_argument("--multi-exp", action="store_true", help="parse every sub-folder of DIR, then print the mean of their means")
    tables = parser.add_argument_group("table mode")
    tables.add_argument(
        "--table", choices=TABLES,
        help="b2n: Base/New/HM per dataset; fewshot: datasets x shots (1 2 4 8 16); "
        "xd: ImageNet source and its 10 target datasets; dg: ImageNet and its 4 variants",
    )
    tables.add_argument(
        "--trainer", action="append", metavar="NAME",
        help="trainer folder to show (repeat, or comma-separate, to put several side by side); "
        "default: every trainer found",
    )
    tables.add_argument(
        "--cfg", metavar="NAME",
        help="config folder to read (e.g. vit_b16); default: the single one of the protocol in each "
        "trainer folder (names ending in 'cross_datasets' for xd/dg, the others for b2n/fewshot)",
    )
    tables.add_argument("--format", choices=FORMATS, default="markdown", help="markdown (GitHub), csv, json or latex")
    tables.add_argument("--std", action="store_true", help="add ± the population std over seeds to each cell")
    tables.add_argument("--plot", metavar="FILE", help="also draw the fewshot or b2n table to FILE (.png, .pdf, .svg; "
                        "needs matplotlib)")
    return parser


def _main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.table:
        for flag, used in (("--ci95", args.ci95), ("--multi-exp", args.multi_exp)):
            if used:
                parser.error(f"{flag} applies to the per-folder mode, not to --table")
        if args.plot:
            check_plot_args(args, parser)
        run_table(args)
        return
    for flag, used in (("--trainer", args.trainer), ("--cfg", args.cfg), ("--std", args.std),
                       ("--format", args.format != "markdown"), ("--plot", args.plot)):
        if used:
            parser.error(f"{flag} applies to --table only")
    if not args.directory:
        parser.error("give the folder to parse (or --table KIND for a result table)")
    run_lineage(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit codes: 0 done, 1 an error (one line on stderr), 2 bad arguments (argparse)."""
    return run_main(_main, argv, errors=BASIC_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
