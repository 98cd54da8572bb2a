"""Every train.py job the protocol scripts launch, recorded through the scripts themselves.

The sweeps (scripts/base_to_novel.sh, few_shot.sh, cross_datasets.sh) run with a stand-in
PYTHON that records each train.py argv and writes the finished log the scripts check for, so
the jobs are exactly those the scripts build (configs, opts, seeds, eval-only), without
training. Each argv is then resolved by mmrl.config's assembly, as train.py resolves it.
"""
import csv
import os
import subprocess
import sys
from typing import Dict, List, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "protocol_configs.tsv")
END = "--end-of-argv--"

RECORDING_PYTHON = r"""#!/usr/bin/env bash
# Stands in for python under the protocol scripts: records train.py's argv, answers the data
# check with "every dataset is present", answers the result reader for the logs it wrote, hands the
# registry query to the real python, and ignores the result parser.
if [[ $1 == train.py ]]; then
    printf '%s\n' "${@:2}" "--end-of-argv--" >> "$RECORD"
    eval_only=0
    while [[ $# -gt 0 ]]; do
        case $1 in
            --output-dir) dir=$2 ;;
            --eval-only) eval_only=1 ;;
        esac
        shift
    done
    mkdir -p "$dir"
    if [[ $eval_only == 0 ]]; then echo "Finish training" > "$dir/log.txt"; fi
    printf '=> result\n* accuracy: 50.0%%\n' >> "$dir/log.txt"
elif [[ $1 == -m && $2 == mmrl.data.check ]]; then
    shift 2
    while [[ $# -gt 0 && $1 != --present-configs ]]; do shift; done
    shift
    printf '%s\n' "$@"
elif [[ $1 == -m && $2 == mmrl.results ]]; then
    # The result of a job this stand-in "ran" (its log above): answered here, as mmrl.results reads
    # that log, because a real interpreter per job would be most of this recording's time.
    if [[ -f $3/log.txt ]]; then echo 50.0; fi
elif [[ $1 == -m && $2 == mmrl.registry ]]; then
    exec "$REAL_PYTHON" "$@"
fi
exit 0
"""

# The values pinned for every job: what the method trains with and how the protocol runs it.
METHOD_KEYS = ("ALPHA", "BETA", "REG_WEIGHT", "REP_DIM", "N_REP_TOKENS", "REP_LAYERS", "PROJ_LORA_DIM",
               "RES_LORA_DIM", "PREC",
               # the baselines' (CoOp, CoCoOp, MaPLe, PromptSRC), under their published nodes
               "N_CTX", "CTX_INIT", "CSC", "CLASS_TOKEN_POSITION", "N_CTX_TEXT", "N_CTX_VISION", "PROMPT_DEPTH",
               "PROMPT_DEPTH_TEXT", "PROMPT_DEPTH_VISION", "GPA_MEAN", "GPA_STD")
RUN_KEYS = ("OPTIM.NAME", "OPTIM.LR", "OPTIM.MAX_EPOCH", "OPTIM.WARMUP_EPOCH", "OPTIM.LR_SCHEDULER",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "DATALOADER.TEST.BATCH_SIZE", "DATASET.NAME",
            "DATASET.NUM_SHOTS", "DATASET.SUBSAMPLE_CLASSES", "TASK", "MODEL.BACKBONE.NAME", "INPUT.SIZE")
COLUMNS = ("job", "mode", "seeds") + METHOD_KEYS + RUN_KEYS


def scripted_trainers() -> List[str]:
    """The trainers that have protocol scripts (the ``TRAINER=`` their script folders set)."""
    names = set()
    for folder in sorted(os.listdir(os.path.join(REPO, "scripts"))):
        path = os.path.join(REPO, "scripts", folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            with open(os.path.join(path, name)) as f:
                names.update(line.strip()[len("TRAINER="):] for line in f if line.startswith("TRAINER="))
    return sorted(names)


def resolved_rows(work_dir: str) -> List[Dict[str, str]]:
    """The fixture rows of every scripted job, resolved now."""
    return rows_of(record_jobs(work_dir, scripted_trainers()), work_dir)


def rows_of(jobs: List[List[str]], work_dir: str) -> List[Dict[str, str]]:
    """The fixture rows of recorded jobs: one row per job folder and mode, with its seeds (the
    seeds of a job must differ in nothing but the seed)."""
    from mmrl.config import build_parser, setup_cfg

    output = os.path.join(work_dir, "output")
    groups: Dict[tuple, List[List[str]]] = {}
    for argv in jobs:
        out = argv[argv.index("--output-dir") + 1]
        job, seed_folder = os.path.split(os.path.relpath(out, output))
        seed = seed_folder[len("seed"):]
        # The seed appears as --seed and as the last folder of --output-dir and --model-dir.
        unseeded = [a[:-len(seed_folder)] if a.endswith("/" + seed_folder) else a for a in argv]
        unseeded[unseeded.index("--seed") + 1] = "SEED"
        groups.setdefault((job, "eval" if "--eval-only" in argv else "train", tuple(unseeded)), []).append(
            [seed, argv])
    rows = []
    for (job, mode, _), jobs in sorted(groups.items()):
        argv = jobs[0][1]
        row = {"job": job, "mode": mode, "seeds": " ".join(seed for seed, _ in jobs)}
        row.update(job_values(setup_cfg(build_parser().parse_args(argv))))
        rows.append(row)
    keys = [(r["job"], r["mode"]) for r in rows]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise AssertionError(f"seeds of these jobs are launched with different arguments: {duplicated}")
    return rows


def sweeps(trainers: Sequence[str]) -> List[List[str]]:
    """The sweep command lines of every trainer (few-shot only where the trainer has it)."""
    commands = []
    for trainer in trainers:
        for sweep in ("base_to_novel", "few_shot", "cross_datasets"):
            commands.append([f"scripts/{sweep}.sh", trainer])
    return commands


def record_jobs(work_dir: str, trainers: Sequence[str]) -> List[List[str]]:
    """The argv (after ``train.py``) of every job the sweeps launch, for the benchmark
    datasets and for the demo."""
    fake = os.path.join(work_dir, "python")
    with open(fake, "w") as f:
        f.write(RECORDING_PYTHON)
    os.chmod(fake, 0o755)
    record = os.path.join(work_dir, "argv.txt")
    data = os.path.join(work_dir, "data")
    os.makedirs(data, exist_ok=True)
    # The protocols' datasets, asked once as a sweep asks them and handed to every sweep the way a
    # sweep exports them to its steps (an interpreter per sweep would be most of the recording's time).
    protocol_datasets = subprocess.run([sys.executable, "-m", "mmrl.registry", "datasets", "--protocol", "b2n", "xd",
                                        "dg"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    for datasets in ("", "demo"):
        env = dict(os.environ, PYTHON=fake, REAL_PYTHON=sys.executable, RECORD=record, DATA=data, OPTS="", FORCE="0",
                   OUTPUT=os.path.join(work_dir, "output"), MMRL_PROTOCOL_DATASETS=protocol_datasets)
        env.pop("SHOTS", None)
        if datasets:
            env["DATASETS"] = datasets
        else:
            env.pop("DATASETS", None)
        for command in sweeps(trainers):
            proc = subprocess.run(["bash", *command], cwd=REPO, env=env, capture_output=True, text=True)
            if proc.returncode != 0 and "does not apply" not in proc.stderr:
                raise AssertionError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    with open(record) as f:
        lines = f.read().split("\n")
    jobs, current = [], []
    for line in lines:
        if line == END:
            jobs.append(current)
            current = []
        elif line or current:
            current.append(line)
    return jobs


def _value(cfg, dotted: str) -> str:
    node = cfg
    for part in dotted.split("."):
        if part not in node:
            return "-"
        node = node[part]
    return repr(node)


def job_values(cfg) -> Dict[str, str]:
    """The pinned values of a resolved job."""
    from mmrl.config import trainer_class

    node = f"TRAINER.{trainer_class(cfg.TRAINER.NAME).node_name or cfg.TRAINER.NAME}"
    row = {key: _value(cfg, f"{node}.{key}") for key in METHOD_KEYS}
    row.update({key: _value(cfg, key) for key in RUN_KEYS})
    return row


def read_fixture(path: str = FIXTURE) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t"))


def write_fixture(rows: List[Dict[str, str]], path: str = FIXTURE) -> None:
    with open(path, "w", newline="") as f:
        f.write("# Resolved values of every job the protocol scripts launch (tests/test_protocol_configs.py).\n"
                "# Regenerate only when a protocol value is meant to change: python -m tests.protocol_jobs\n")
        writer = csv.DictWriter(f, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_fixture(resolved_rows(tmp))
    print(f"wrote {FIXTURE}")
