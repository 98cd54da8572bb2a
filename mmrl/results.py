"""A run's result: written once as ``results.json`` beside the log, read back by one reader.

Every test run leaves ``OUTPUT_DIR/results.json`` (written atomically, so a reader sees the old
file or the complete new one). Folders written by the lineage's code have only log lines, so
:func:`read_run` falls back to them: the last ``* <keyword>: X%`` after the first ``=> result``
line of a log. A folder can hold several logs (a rerun keeps ``log.txt`` and writes
``log.txt-<timestamp>``); the newest log that holds a result is the folder's result, and a
folder whose logs hold none is *unfinished*, never a value.

This module imports neither torch nor the engine: the result parser and the scripts use it.

    python -m mmrl.results FOLDER [--keyword accuracy] [--after-training]

prints the folder's value (nothing when it has none) for the shell scripts.
"""
import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mmrl.files import atomic_write

RESULTS_FILE = "results.json"
LOG_FILE = "log.txt"
END_SIGNAL = "=> result"
# The engine prints this once training is over; a training job's result is the test after it.
TRAINING_DONE = "Finish training"
FORMAT_VERSION = 1
# results.json fields that hold a metric, keyed by the name of its "* <name>: X%" log line.
METRIC_FIELDS = ("accuracy", "error", "macro_f1", "average")

# The type of each field a reader may use; a field of another type makes the record unusable.
_NUMBER = (int, float)
_TEXT = (str, type(None))
RECORD_FIELDS: Dict[str, Tuple[type, ...]] = {
    "format": (int,), "split": _TEXT, "total": (int,), "correct": (int,),
    **{name: _NUMBER for name in METRIC_FIELDS},
    "task": _TEXT, "logits": _TEXT, "epoch": (int, type(None)), "after_training": (bool,),
    "trainer": _TEXT, "dataset": _TEXT, "subsample": _TEXT, "shots": (int,), "seed": (int,),
    "config_file": _TEXT, "dataset_config_file": _TEXT, "backbone": _TEXT,
    "wall_time_s": _NUMBER, "finished_at": _TEXT, "log": _TEXT,
}
# Every record the engine writes holds these; one without them is not a result.
REQUIRED_FIELDS = ("accuracy",)

_STAMP = re.compile(r"^log\.txt-(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)(?:-(\d+))?$")


def metric_regex(keyword: str) -> "re.Pattern[str]":
    return re.compile(rf"\* {re.escape(keyword)}: ([\.\deE+-]+)%")


def as_logged(value: float) -> float:
    """``value`` at the precision of its log line (``* accuracy: 82.7%``).

    Tables use this precision whatever the source, so a folder with ``results.json`` and a
    lineage folder with only its log give the same cells for the same run.
    """
    return float(f"{value:.1f}")


def log_files(folder: str) -> List[str]:
    """The run logs of ``folder``, oldest first: ``log.txt``, then ``log.txt-<timestamp>[-n]``.

    Logs set aside by the scripts (``log.txt.unfinished-*``) are not run logs.
    """
    if not os.path.isdir(folder):
        return []
    stamped: List[Tuple[str, int, str]] = []
    for name in os.listdir(folder):
        match = _STAMP.match(name)
        if match and os.path.isfile(os.path.join(folder, name)):
            stamped.append((match.group(1), int(match.group(2) or 0), name))
    names = [LOG_FILE] if os.path.isfile(os.path.join(folder, LOG_FILE)) else []
    names += [name for _, _, name in sorted(stamped)]
    return [os.path.join(folder, name) for name in names]


def read_log_metric(log_path: str, regex: "re.Pattern[str]", after: Optional[str] = None,
                    end_signal: str = END_SIGNAL) -> Optional[float]:
    """The last value matching ``regex`` after the first line equal to ``end_signal``, or None.

    With ``after``, only result blocks that follow the first line equal to ``after`` count.
    """
    value = None
    started = after is None
    armed = False
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not started:
                started = line == after
                continue
            if line == end_signal:
                armed = True
            if armed:
                match = regex.search(line)
                if match:
                    value = float(match.group(1))
    return value


def record_problem(record: Any) -> Optional[str]:
    """What makes a parsed ``results.json`` unusable (a missing or wrong-typed field), or None."""
    if not isinstance(record, dict):
        return f"not a JSON object but a JSON {type(record).__name__}"
    for name in REQUIRED_FIELDS:
        if name not in record:
            return f"no '{name}' field"
    for name, types in RECORD_FIELDS.items():
        if name not in record:
            continue
        value = record[name]
        # JSON's true/false are Python bools, which are ints: only after_training may be one.
        wrong = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        if not wrong and name in METRIC_FIELDS and not (0.0 <= float(value) <= 100.0):
            return f"'{name}' is {value!r}, not a percentage between 0 and 100"
        if wrong:
            want = " or ".join("null" if t is type(None) else {"int": "a whole number", "float": "a number",
                                                               "str": "a string", "bool": "true/false"}[t.__name__]
                               for t in types if not (t is int and float in types))
            return f"'{name}' is {json.dumps(value)[:40]}, not {want}"
    return None


def read_record(folder: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(the contents of ``folder/results.json``, None), (None, why it cannot be used), or
    (None, None) where there is none. A record that cannot be used makes the run unfinished
    (its result is not known), whatever its logs say."""
    path = os.path.join(folder, RESULTS_FILE)
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        return None, f"{path}: unreadable ({type(err).__name__}: {err}); rerun the test, or delete it to use the log lines"
    problem = record_problem(record)
    if problem:
        return None, f"{path}: {problem}; rerun the test, or delete it to use the log lines"
    return record, None


@dataclass
class RunResult:
    """What one run folder (one seed) holds."""

    folder: str
    status: str  # "finished" | "unfinished" | "missing"
    value: Optional[float] = None  # the metric, at log precision
    source: Optional[str] = None  # the file it was read from (results.json or a log)
    log: Optional[str] = None  # the log that holds the result, when known
    record: Optional[Dict[str, Any]] = None  # results.json, when that is the source
    detail: str = ""  # why there is no value
    notes: List[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status == "finished"


def read_run(folder: str, keyword: str = "accuracy", after_training: bool = False) -> RunResult:
    """The latest complete result of a run folder.

    ``results.json`` is used unless a log newer than the one it names holds a result (a lineage
    run into the same folder); otherwise the newest log with a ``* <keyword>`` line after
    ``=> result`` is. ``after_training``: only a test that followed training counts (a training
    job's result, not an evaluation of it).
    """
    logs = log_files(folder)
    regex = metric_regex(keyword)
    after = TRAINING_DONE if after_training else None
    newest: Optional[Tuple[int, str, float]] = None  # (index, path, value)
    for index in range(len(logs) - 1, -1, -1):
        value = read_log_metric(logs[index], regex, after)
        if value is not None:
            newest = (index, logs[index], value)
            break

    record, problem = read_record(folder)
    if problem:
        return RunResult(folder, "unfinished", detail=problem)
    notes: List[str] = []
    usable = record is not None and isinstance(record.get(keyword), _NUMBER) and not isinstance(record[keyword], bool)
    if usable and (record.get("after_training") or not after_training):
        names = [os.path.basename(p) for p in logs]
        # A record whose log is gone (renamed, deleted) counts as the newest thing in the folder.
        index = names.index(record["log"]) if record.get("log") in names else len(logs)
        if newest is None or newest[0] <= index:
            log = os.path.join(folder, record["log"]) if record.get("log") in names else None
            return RunResult(folder, "finished", as_logged(float(record[keyword])),
                             os.path.join(folder, RESULTS_FILE), log, record, notes=notes)

    if newest is not None:
        _, path, value = newest
        return RunResult(folder, "finished", value, path, path, notes=notes)
    if logs:
        need = f" after '{TRAINING_DONE}'" if after_training else ""
        detail = (f"{logs[-1]}: no '* {keyword}' line after '{END_SIGNAL}'{need} "
                  "(crashed or unfinished run)")
        if len(logs) > 1:
            detail += f"; nor in {', '.join(os.path.basename(p) for p in logs[:-1])}"
        return RunResult(folder, "unfinished", detail=detail, notes=notes)
    return RunResult(folder, "missing", detail=f"{folder}: no {LOG_FILE}", notes=notes)


# ---------------------------------------------------------------------------------------------
# Writing


def write_record(folder: str, record: Mapping[str, Any]) -> str:
    """Write ``folder/results.json`` atomically; returns its path."""
    path = os.path.join(folder, RESULTS_FILE)
    payload = json.dumps({"format": FORMAT_VERSION, **record}, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, lambda f: f.write(payload.encode("utf-8")))
    return path


# ---------------------------------------------------------------------------------------------
# Command line (the scripts' finished-job check and one-line summary)


def _main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmrl.results", description="Print the result of a run folder (nothing if it has none).")
    parser.add_argument("folder")
    parser.add_argument("--keyword", default="accuracy")
    parser.add_argument("--after-training", action="store_true",
                        help=f"only a test that followed training ('{TRAINING_DONE}') counts")
    args = parser.parse_args(argv)
    if os.path.exists(args.folder) and not os.path.isdir(args.folder):
        raise NotADirectoryError(f"{args.folder} is a file: give a run folder (the one that holds log.txt)")
    result = read_run(args.folder, args.keyword, args.after_training)
    if result.finished:
        print(f"{result.value:.1f}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mmrl.cli import BASIC_ERRORS, run_main  # mmrl.cli imports nothing heavy either

    return run_main(_main, argv, errors=BASIC_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
