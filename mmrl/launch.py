"""Launchers of the protocol sweeps: where the jobs that ``scripts/common.sh`` plans run.

    python -m mmrl.launch check --launcher pool|slurm [options]
    python -m mmrl.launch run   --launcher pool|slurm --plan FILE --status FILE [options]

The protocol scripts decide which jobs a sweep has, their folders, their commands and the
skip / rerun / FORCE rules; under ``LAUNCHER=pool`` or ``LAUNCHER=slurm`` they write those
jobs to a plan file (one shell-quoted line each: tag, output folder, mode, the folder of the
job it needs, the command) instead of running them, and this module runs the plan:

- ``pool``: several jobs at a time on this machine, one per GPU of ``GPUS=0,1,..`` (each job
  sees only its own GPU through ``CUDA_VISIBLE_DEVICES``) or ``SLOTS=N`` CPU jobs (torch's
  threads split between them). A job that needs another one starts when that one is done.
- ``slurm``: every job submitted through submitit, a test job with ``afterok`` on its train
  job, so a whole table is queued at once. A job stopped by its time limit or preempted is
  requeued through submitit's checkpoint hook and, rerun in the same folder, resumes from the
  last complete epoch. A job of ``JOB_NODES`` nodes (``--nodes-per-job``) has one task per
  node; each runs the job's command, which starts the node's torchrun (``JOB_GPUS``
  processes) at a rendezvous on the job's first node, and node 0 alone keeps the job's records.

Each job's stdout and stderr go to its output folder (``job.log`` for the pool,
``slurm/<jobid>_0_log.out`` for SLURM). Whether a job finished is asked of the scripts' one
result reader (``job_accuracy`` in ``scripts/common.sh``). The outcome of every job is
appended to the status file (``STATUS<TAB>TAG<TAB>FOLDER<TAB>DETAIL``), from which the
scripts print the sweep's summary.
"""
import argparse
import datetime
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

from mmrl.cli import BASIC_ERRORS, UserError, report, run_main

LAUNCHERS = ("local", "pool", "slurm")
# Where an interrupted SLURM job finds the signal that requeues it (submitit's default).
SLURM_SIGNAL = signal.SIGUSR2
# squeue states of a job that may still run (everything else has ended).
SLURM_ACTIVE = {
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
    "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "SPECIAL_EXIT",
}
POOL_LOG = "job.log"
SLURM_FOLDER = "slurm"
SLURM_JOB_ID_FILE = "job_id"


class LaunchError(UserError):
    """A launcher that cannot run here, or bad launcher options: one line for the user."""


@dataclass
class Job:
    tag: str
    dir: str
    mode: str
    after: str  # the output folder of the job this one needs ("" for none)
    argv: List[str]
    status: str = "planned"
    detail: str = ""
    needs: Optional["Job"] = field(default=None, repr=False)


def read_plan(path: str) -> List[Job]:
    jobs: List[Job] = []
    if not os.path.isfile(path):
        raise LaunchError(f"--plan {path}: {'a folder' if os.path.isdir(path) else 'no such file'}; "
                          "give the plan file the protocol scripts write")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                words = shlex.split(line)
            except ValueError as err:
                raise LaunchError(f"{path}:{number}: not a shell-quoted plan line ({err}): {line.strip()!r}") from None
            if len(words) < 5:
                raise LaunchError(f"{path}:{number}: a plan line needs TAG DIR MODE AFTER COMMAND..., got {line.strip()!r}")
            jobs.append(Job(tag=words[0], dir=words[1], mode=words[2], after=words[3], argv=words[4:]))
    by_dir = {job.dir: job for job in jobs}
    for job in jobs:
        job.needs = by_dir.get(job.after) if job.after else None
    return jobs


def stamp() -> str:
    return datetime.datetime.now().isoformat(timespec="milliseconds")


def job_accuracy(job: Job) -> str:
    """The accuracy of a finished job, from the scripts' result reader ("" when unfinished)."""
    proc = subprocess.run(
        ["bash", "-c", 'source scripts/common.sh && job_accuracy "$1" "$2"', "job_accuracy", job.dir, job.mode],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise LaunchError(f"could not read the result of {job.dir}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def write_status(path: str, job: Job) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{job.status}\t{job.tag}\t{job.dir}\t{job.detail}\n")


def last_error(log: str) -> str:
    """The line a failed job ended with (its one-line error, when it printed one), or ""."""
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f.readlines()[-40:]]
    except OSError:
        return ""
    lines = [line for line in lines if line and not line.startswith(("===", "(set MMRL_DEBUG"))]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or [""])[-1][:300]


def settle(job: Job, log: str, rc: Optional[int]) -> None:
    """Done when the result reader finds the job's result, failed otherwise (with the reason its
    log ends with). A result that cannot be read fails this job only."""
    try:
        accuracy = job_accuracy(job)
    except LaunchError as err:
        job.status, job.detail = "failed", f"{log} ({err})"
        return
    if accuracy:
        job.status, job.detail = "done", f"accuracy {accuracy}%"
    else:
        how = f"exit {rc}" if rc is not None else "ended"
        reason = last_error(log)
        job.status, job.detail = "failed", f"{log} ({how}, no result in {job.dir}/log.txt{': ' + reason if reason else ''})"


def unusable_folder(job: Job) -> Optional[str]:
    """Why a job cannot start in its folder (a path taken by a file, a folder that cannot be
    made or written), or None; the job is then failed before it starts, and the others run."""
    path = job.dir
    if os.path.exists(path) and not os.path.isdir(path):
        return f"cannot start: its folder {path} is a file; move the file away or choose another OUTPUT"
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        return f"cannot start: cannot create its folder {path} ({err.strerror or err}); choose another OUTPUT"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"cannot start: its folder {path} is not writable; choose another OUTPUT"
    return None


def start_job(argv: Sequence[str], **kwargs: object) -> subprocess.Popen:
    """A job's command in a process group of its own, so that stopping it reaches the
    train.py under the job's bash too (scripts/job.sh outlives its train.py on SIGTERM)."""
    return subprocess.Popen(list(argv), start_new_session=True, **kwargs)  # type: ignore[call-overload]


def stop_job(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGTERM to the job's process group (the engine saves nothing half-written and exits),
    then wait for the job, SIGKILL after ``timeout``. Waits with ``os.waitpid`` rather than
    ``Popen.wait``: this runs inside signal handlers that may interrupt a ``Popen.wait``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    while True:
        try:
            pid, _ = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped
            return
        if pid:
            return
        if time.time() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = float("inf")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# pool


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def per_job(value: str) -> int:
    """JOB_GPUS (--gpus-per-job): the processes of each job (torchrun when more than one), each
    on a GPU of its own; 1 when unset."""
    value = value.strip()
    if not value:
        return 1
    if not re.fullmatch(r"\d+", value):
        raise LaunchError(f"JOB_GPUS (--gpus-per-job) must be a whole number, got '{value}'")
    return max(1, int(value))


def nodes_per_job(value: str) -> int:
    """JOB_NODES (--nodes-per-job): the machines each job spans (1 when unset)."""
    value = value.strip() or "1"
    if not re.fullmatch(r"[1-9]\d*", value):
        raise LaunchError(f"JOB_NODES (--nodes-per-job) must be a positive whole number, got '{value}'")
    return int(value)


def pool_slots(gpus: str, slots: str, gpus_per_job: int = 1) -> List[Dict[str, str]]:
    """The environment of each slot: ``gpus_per_job`` GPUs each, or CPU slots sharing the threads
    (``gpus_per_job`` processes in each)."""
    gpus, slots = gpus.strip(), slots.strip()
    if gpus and slots:
        raise LaunchError(f"LAUNCHER=pool takes GPUS or SLOTS, not both (got GPUS={gpus}, SLOTS={slots})")
    if gpus:
        ids = [g.strip() for g in gpus.split(",")]
        if not all(re.fullmatch(r"\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-zA-Z/-]+", g) for g in ids):
            raise LaunchError(f"GPUS must list GPU indices (or UUIDs) separated by commas, e.g. GPUS=0,1,2,3; got '{gpus}'")
        if len(set(ids)) != len(ids):
            raise LaunchError(f"GPUS lists a GPU twice ('{gpus}'): each job of the pool gets a GPU of its own")
        if len(ids) % gpus_per_job:
            raise LaunchError(f"GPUS lists {len(ids)} GPUs ('{gpus}'), not a multiple of --gpus-per-job "
                              f"{gpus_per_job}: each job of the pool takes {gpus_per_job} of them")
        envs = [{"CUDA_VISIBLE_DEVICES": ",".join(ids[i:i + gpus_per_job])} for i in range(0, len(ids), gpus_per_job)]
    elif slots:
        if not re.fullmatch(r"[1-9]\d*", slots):
            raise LaunchError(f"SLOTS must be a positive integer (the number of jobs at a time), got '{slots}'")
        envs = [{"CUDA_VISIBLE_DEVICES": ""} for _ in range(int(slots))]
    else:
        raise LaunchError("LAUNCHER=pool needs GPUS=0,1,... (one job per GPU) or SLOTS=N (N CPU jobs at a time)")
    # Every job of the pool gets its share of the cores, unless the user chose a thread count.
    if "OMP_NUM_THREADS" not in os.environ:
        threads = str(max(1, cpu_count() // (len(envs) * gpus_per_job)))
        for env in envs:
            env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    return envs


def slot_name(env: Dict[str, str], gpus_per_job: int = 1) -> str:
    if env["CUDA_VISIBLE_DEVICES"]:
        return f"GPU{'s' if ',' in env['CUDA_VISIBLE_DEVICES'] else ''} {env['CUDA_VISIBLE_DEVICES']}"
    procs = f"{gpus_per_job} processes, " if gpus_per_job > 1 else ""
    return f"CPU, {procs}{env.get('OMP_NUM_THREADS', 'all')} threads{' each' if procs else ''}"


@dataclass
class Running:
    job: Job
    proc: subprocess.Popen
    slot: int
    log: str
    start: float


def run_pool(jobs: List[Job], slots: List[Dict[str, str]], status_file: str) -> None:
    free = list(range(len(slots)))
    waiting = list(jobs)
    running: List[Running] = []
    interrupted: List[int] = []

    def on_signal(signum: int, frame: object) -> None:
        interrupted.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while waiting or running:
            for run in list(running):
                rc = run.proc.poll()
                if rc is None:
                    continue
                with open(run.log, "a", encoding="utf-8") as f:
                    f.write(f"=== {run.job.tag}: finished {stamp()} (exit {rc}) ===\n")
                settle(run.job, run.log, rc)
                seconds = round(time.time() - run.start)
                if run.job.status == "done":
                    print(f"[pool] done   {run.job.tag}: {run.job.detail} ({seconds}s)", flush=True)
                else:
                    print(f"[pool] FAILED {run.job.tag} (exit {rc}, {seconds}s): see {run.log}", flush=True)
                write_status(status_file, run.job)
                running.remove(run)
                free.append(run.slot)
            if interrupted:
                break
            for job in list(waiting):
                if job.needs is not None and job.needs.status in ("planned", "running"):
                    continue
                if job.needs is not None and job.needs.status != "done":
                    waiting.remove(job)
                    job.status = "failed"
                    job.detail = f"not run: the job it needs ({job.needs.tag}) failed"
                    print(f"[pool] FAILED {job.tag}: {job.detail}", flush=True)
                    write_status(status_file, job)
                    continue
                if not free:
                    break
                waiting.remove(job)
                problem = unusable_folder(job)
                if problem is None:
                    slot = free.pop(0)
                    try:
                        running.append(start_pool_job(job, slot, slots[slot]))
                        continue
                    except OSError as err:  # its log cannot be written, its command not started
                        free.insert(0, slot)
                        problem = f"cannot start: {err}"
                job.status, job.detail = "failed", problem
                print(f"[pool] FAILED {job.tag}: {job.detail}", flush=True)
                write_status(status_file, job)
            time.sleep(0.2)
    finally:
        if interrupted or running:
            for run in running:
                stop_job(run.proc)
                run.job.status = "failed"
                run.job.detail = f"{run.log} (interrupted: rerun the sweep to resume it)"
                write_status(status_file, run.job)
            for job in waiting:
                job.status, job.detail = "failed", "not run: the sweep was interrupted"
                write_status(status_file, job)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if interrupted:
        name = signal.Signals(interrupted[0]).name
        print(f"[pool] {name}: stopped the running jobs; rerun the same command to resume", flush=True)
        sys.exit(128 + interrupted[0])


def start_pool_job(job: Job, slot: int, slot_env: Dict[str, str]) -> Running:
    log = os.path.join(job.dir, POOL_LOG)
    where = slot_name(slot_env, per_job(os.environ.get("JOB_GPUS", "")))
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"=== {job.tag}: started {stamp()} ({where}) ===\n")
        f.flush()
        proc = start_job(job.argv, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **slot_env})
    job.status = "running"
    print(f"[pool] start  {job.tag} ({where}) -> {log}", flush=True)
    return Running(job, proc, slot, log, time.time())


# ---------------------------------------------------------------------------------------------
# slurm


def require_submitit() -> None:
    missing = []
    try:
        import submitit  # noqa: F401
    except ImportError:
        missing.append("the Python package submitit is not installed (pip install -e '.[slurm]', or pip install submitit)")
    if shutil.which("sbatch") is None:
        missing.append(
            "SLURM's sbatch is not on the PATH (run the sweep where SLURM jobs are submitted, e.g. a login node, "
            "or add SLURM's bin folder to PATH)"
        )
    if missing:
        raise LaunchError("LAUNCHER=slurm cannot submit: " + "; and ".join(missing))


def time_minutes(value: str) -> int:
    """SLURM's time formats (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in minutes."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not match:
        raise LaunchError(f"JOB_TIME (--time) must be minutes or [D-]HH:MM[:SS], got '{value}'")
    days, a, b, c = match.groups()
    if days is not None:
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:
        seconds = int(a) * 60 + int(b)
    else:
        seconds = int(a) * 60
    if seconds <= 0:
        raise LaunchError(f"JOB_TIME (--time) must be positive, got '{value}'")
    return max(1, -(-seconds // 60))


def sbatch_extra(value: str) -> Dict[str, object]:
    """Extra sbatch arguments ("--constraint=a100 --exclusive") as submitit's parameters."""
    extra: Dict[str, object] = {}
    words = shlex.split(value)
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--") or len(word) < 3:
            raise LaunchError(
                f"JOB_SBATCH_ARGS (--sbatch-args) takes long sbatch options like --constraint=a100, got '{word}'"
            )
        key, eq, val = word[2:].partition("=")
        if eq:
            extra[key] = val
        elif i + 1 < len(words) and not words[i + 1].startswith("--"):
            extra[key] = words[i + 1]
            i += 1
        else:
            extra[key] = True
        i += 1
    return extra


# The port of a SLURM job's rendezvous: derived from the job id, so that the jobs sharing a node
# use different ones and every node of a job computes the same one without talking to the others.
RDZV_BASE_PORT = 29500
RDZV_PORTS = 10000


def slurm_rendezvous(environ: Mapping[str, str]) -> Dict[str, str]:
    """The variables run_job (scripts/common.sh) starts a node's torchrun with, from SLURM's own
    in a job's task: the rendezvous on the job's first node (c10d, which also spans nodes, where
    --standalone does not), the job's node count, and this node's index (node 0 keeps the job's
    records)."""
    import submitit

    missing = [name for name in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NNODES", "SLURM_NODEID")
               if not environ.get(name)]
    if missing:
        raise LaunchError(f"not inside a SLURM job's task: {', '.join(missing)} not set")
    job_id = environ["SLURM_JOB_ID"]
    saved = os.environ.get("SLURM_JOB_NODELIST")
    # submitit parses SLURM's compressed node lists ("gpu[07-08,11]") from the environment.
    os.environ["SLURM_JOB_NODELIST"] = environ["SLURM_JOB_NODELIST"]
    try:
        first = submitit.slurm.slurm.SlurmJobEnvironment().hostnames[0]
    finally:
        if saved is None:
            del os.environ["SLURM_JOB_NODELIST"]
        else:
            os.environ["SLURM_JOB_NODELIST"] = saved
    port = RDZV_BASE_PORT + int(re.sub(r"\D", "", job_id) or 0) % RDZV_PORTS
    return {"JOB_RDZV_ENDPOINT": f"{first}:{port}", "JOB_RDZV_ID": job_id,
            "JOB_NODES": environ["SLURM_NNODES"], "JOB_NODE": environ["SLURM_NODEID"]}


class SweepJob:
    """What a SLURM job runs on each of its nodes (submitit starts one task per node): the job's
    command, as the pool would, in a child process.

    A job of several processes (``gpus_per_job``) or nodes runs its command with the rendezvous
    of ``slurm_rendezvous``: every node starts one torchrun, and node 0 alone keeps the job's
    records. submitit's checkpoint hook (SIGUSR2 before the time limit, or on preemption) runs on
    node 0: it ends the child cleanly and requeues this same object; rerun in the same output
    folder, the command keeps the unfinished log aside and the engine resumes from the last
    saved epoch."""

    def __init__(self, tag: str, argv: Sequence[str], cwd: str, threads: Optional[int],
                 gpus_per_job: int = 1, nodes: int = 1) -> None:
        self.tag = tag
        self.argv = list(argv)
        self.cwd = cwd
        self.threads = threads
        self.gpus_per_job = gpus_per_job
        self.nodes = nodes
        self._child: Optional[subprocess.Popen] = None

    def child_env(self, environ: Mapping[str, str]) -> Dict[str, str]:
        """The environment of the job's command on this node."""
        env = dict(environ)
        if self.threads and "OMP_NUM_THREADS" not in env:
            # The node's CPUs are shared by its processes.
            threads = str(max(1, self.threads // self.gpus_per_job))
            env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        # Set here rather than left to sbatch's copy of the sweep's environment (a site may not
        # copy it).
        env.update(JOB_GPUS=str(self.gpus_per_job), JOB_NODES=str(self.nodes))
        if self.gpus_per_job > 1 or self.nodes > 1:
            env.update(slurm_rendezvous(environ))
        return env

    def __getstate__(self) -> Dict[str, object]:
        state = dict(self.__dict__)
        state["_child"] = None
        return state

    def __setstate__(self, state: Dict[str, object]) -> None:
        # A job pickled before jobs had several processes or nodes (queued across an update).
        self.__dict__.update({"gpus_per_job": 1, "nodes": 1, **state})

    def __call__(self) -> int:
        env = self.child_env(os.environ)
        node = f", node {env['JOB_NODE']} of {env['JOB_NODES']}" if "JOB_NODE" in env else ""
        print(f"=== {self.tag}: started {stamp()} (SLURM job {env.get('SLURM_JOB_ID', '?')}{node}) ===", flush=True)
        # The child ignores the requeue signal (SLURM sends it to every process of the job):
        # the hook below stops the child with SIGTERM, which the engine handles.
        handler = signal.signal(SLURM_SIGNAL, signal.SIG_IGN)
        try:
            self._child = start_job(self.argv, cwd=self.cwd, env=env)
        finally:
            signal.signal(SLURM_SIGNAL, handler)
        while self._child.poll() is None:
            time.sleep(0.5)
        rc = self._child.returncode
        print(f"=== {self.tag}: finished {stamp()} (exit {rc}) ===", flush=True)
        if rc in (128 + signal.SIGTERM, -signal.SIGTERM):
            # Stopped by SLURM (preemption, scancel): when it is a preemption, the requeue
            # signal follows and the hook requeues the job; otherwise SLURM ends it.
            time.sleep(120)
        if rc != 0:
            raise RuntimeError(f"{self.tag}: the job's command exited with {rc}")
        return rc

    def checkpoint(self) -> "object":
        import submitit

        child = self._child
        if child is not None and child.poll() is None:
            print(f"=== {self.tag}: stopping for requeue {stamp()} ===", flush=True)
            stop_job(child)
        return submitit.helpers.DelayedSubmission(self)


@dataclass
class SlurmOptions:
    partition: str
    gpus: str
    cpus: str
    mem: str
    time: str
    account: str
    qos: str
    sbatch_args: str
    max_requeues: str
    nodes: str = "1"

    def parameters(self) -> Dict[str, object]:
        # One task per node: submitit's srun runs a SweepJob on each node, whose torchrun starts
        # the node's processes.
        params: Dict[str, object] = {"time": time_minutes(self.time), "stderr_to_stdout": True,
                                     "nodes": nodes_per_job(self.nodes), "ntasks_per_node": 1}
        for name, value in (("gpus", self.gpus), ("cpus", self.cpus)):
            if value and not re.fullmatch(r"\d+", value):
                raise LaunchError(f"JOB_{name.upper()} (--{name}) must be a whole number, got '{value}'")
        if self.gpus and int(self.gpus) > 0:
            params["gpus_per_node"] = int(self.gpus)
        if self.cpus:
            params["cpus_per_task"] = int(self.cpus)
        if self.mem:
            if not re.fullmatch(r"\d+[KMGT]?", self.mem):
                raise LaunchError(f"JOB_MEM (--mem) must be SLURM memory like 32G or 64000M, got '{self.mem}'")
            params["mem"] = self.mem
        for key, value in (("partition", self.partition), ("account", self.account), ("qos", self.qos)):
            if value:
                params[key] = value
        params["additional_parameters"] = sbatch_extra(self.sbatch_args)
        return params

    def requeues(self) -> int:
        if not re.fullmatch(r"\d+", self.max_requeues):
            raise LaunchError(f"JOB_MAX_REQUEUES (--max-requeues) must be a whole number, got '{self.max_requeues}'")
        return int(self.max_requeues)


def slurm_states(ids: Sequence[str]) -> Dict[str, str]:
    """squeue's state of the jobs given that SLURM still lists."""
    proc = subprocess.run(["squeue", "-h", "-o", "%i|%T"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LaunchError(f"squeue failed ({proc.returncode}): {proc.stderr.strip()}")
    wanted = set(ids)
    states = {}
    for line in proc.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id in wanted:
            states[job_id] = state
    return states


def run_slurm(jobs: List[Job], options: SlurmOptions, status_file: str, wait: bool, poll_s: float) -> None:
    require_submitit()
    import submitit

    params = options.parameters()
    requeues = options.requeues()
    threads = params.get("cpus_per_task")
    ids: Dict[str, str] = {}
    try:
        for job in jobs:
            folder = os.path.join(job.dir, SLURM_FOLDER)
            problem = unusable_folder(job)
            if problem is None and job.needs is not None and job.needs.status == "failed":
                problem = f"not run: the job it needs ({job.needs.tag}) failed"
            if problem is None:
                try:
                    os.makedirs(folder, exist_ok=True)
                except OSError as err:
                    problem = f"cannot start: cannot create {folder} ({err.strerror or err})"
            if problem is not None:
                job.status, job.detail = "failed", problem
                print(f"[slurm] FAILED {job.tag}: {job.detail}", flush=True)
                continue
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=requeues)
            extra = dict(params["additional_parameters"])  # type: ignore[arg-type]
            after = ids[job.needs.dir] if job.needs is not None else (queued_job(job.after) if job.after else "")
            if after:
                extra.update({"dependency": f"afterok:{after}", "kill-on-invalid-dep": "yes"})
            executor.update_parameters(
                **{k: v for k, v in params.items() if k != "additional_parameters"},
                job_name=re.sub(r"[^\w.-]+", "_", job.tag), additional_parameters=extra,
            )
            try:
                submitted = executor.submit(SweepJob(job.tag, job.argv, os.getcwd(), threads,
                                                     per_job(options.gpus), nodes_per_job(options.nodes)))
            except Exception as err:  # sbatch refused the job (bad partition, account, ...)
                raise LaunchError(f"sbatch refused {job.tag}: {err}".strip()) from err
            job_id = str(submitted.job_id)
            ids[job.dir] = job_id
            with open(os.path.join(folder, SLURM_JOB_ID_FILE), "w", encoding="utf-8") as f:
                f.write(job_id + "\n")
            job.status = "submitted"
            job.detail = f"SLURM job {job_id}, log {os.path.join(folder, f'{job_id}_0_log.out')}"
            print(f"[slurm] submitted {job.tag}: job {job_id}{f' after {after}' if after else ''}"
                  f" -> {folder}/{job_id}_0_log.out", flush=True)
    except LaunchError:
        for job in jobs:
            if job.status in ("submitted", "failed"):
                write_status(status_file, job)
        raise
    for job in jobs:
        if job.status == "failed" or not wait:
            write_status(status_file, job)
    if not wait:
        return
    remaining = {job.dir: job for job in jobs if job.status == "submitted"}
    print(f"[slurm] waiting for {len(remaining)} jobs (WAIT=1)", flush=True)
    seen: Dict[str, str] = {}
    while remaining:
        time.sleep(poll_s)
        states = slurm_states([ids[d] for d in remaining])
        for d, job in list(remaining.items()):
            job_id = ids[d]
            state = states.get(job_id)
            if state in SLURM_ACTIVE:
                if seen.get(job_id) != state:
                    seen[job_id] = state
                    print(f"[slurm] job {job_id} {job.tag}: {state}", flush=True)
                continue
            log = os.path.join(job.dir, SLURM_FOLDER, f"{job_id}_0_log.out")
            settle(job, log, None)
            if job.status == "failed":
                state = state or "ended"
                if os.path.isfile(log):
                    job.detail = f"{log} (SLURM state {state}, no result in {job.dir}/log.txt)"
                elif job.needs is not None and job.needs.status == "failed":
                    job.detail = f"not run (SLURM job {job_id} {state}): the job it needs ({job.needs.tag}) failed"
                else:
                    job.detail = f"not run (SLURM job {job_id} {state}; scontrol show job {job_id} may say why)"
                print(f"[slurm] FAILED {job.tag}: {job.detail}", flush=True)
            else:
                print(f"[slurm] done   {job.tag} (job {job_id}): {job.detail}", flush=True)
            write_status(status_file, job)
            del remaining[d]


# ---------------------------------------------------------------------------------------------


@dataclass
class Settings:
    """The launchers' settings: environment variables (the sweeps turn their flags into them)."""

    launcher: str
    gpus: str
    slots: str
    wait: str
    poll_s: float
    slurm: SlurmOptions

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        try:
            poll_s = float(env("WAIT_POLL_S", "10"))
        except ValueError:
            raise LaunchError(f"WAIT_POLL_S must be a number of seconds, got '{env('WAIT_POLL_S')}'") from None
        slurm = SlurmOptions(
            partition=env("JOB_PARTITION", ""), gpus=env("JOB_GPUS", ""), cpus=env("JOB_CPUS", ""),
            mem=env("JOB_MEM", ""), time=env("JOB_TIME", "240"), account=env("JOB_ACCOUNT", ""),
            qos=env("JOB_QOS", ""), sbatch_args=env("JOB_SBATCH_ARGS", ""),
            max_requeues=env("JOB_MAX_REQUEUES", "3"), nodes=env("JOB_NODES", "1"),
        )
        return cls(env("LAUNCHER", "local"), env("GPUS", ""), env("SLOTS", ""), env("WAIT", "0"), poll_s, slurm)

    def check(self) -> None:
        """Everything a launcher needs, before the sweep plans its first job."""
        if self.launcher not in LAUNCHERS:
            raise LaunchError(f"unknown LAUNCHER '{self.launcher}': use one of {', '.join(LAUNCHERS)}")
        if self.wait not in ("0", "1"):
            raise LaunchError(f"WAIT must be 0 or 1, got '{self.wait}'")
        per_job(self.slurm.gpus)
        nodes = nodes_per_job(self.slurm.nodes)
        if nodes > 1 and self.launcher != "slurm":
            raise LaunchError(f"JOB_NODES (--nodes-per-job) {nodes} needs --launcher slurm: "
                              f"LAUNCHER={self.launcher} runs its jobs on this one machine")
        if self.launcher == "pool":
            pool_slots(self.gpus, self.slots, per_job(self.slurm.gpus))
        elif self.launcher == "slurm":
            require_submitit()
            self.slurm.parameters()
            self.slurm.requeues()


def queued_job(folder: str) -> str:
    """The SLURM job still queued or running for a job folder ("" when none); a job never
    counts itself, so that its requeued run goes ahead."""
    path = os.path.join(folder, SLURM_FOLDER, SLURM_JOB_ID_FILE)
    if not os.path.isfile(path) or shutil.which("squeue") is None:
        return ""
    with open(path, encoding="utf-8") as f:
        job_id = f.read().strip()
    if not job_id or job_id == os.environ.get("SLURM_JOB_ID"):
        return ""
    try:
        state = slurm_states([job_id]).get(job_id)
    except LaunchError:
        return ""  # no controller to ask: nothing can be queued there
    return job_id if state in SLURM_ACTIVE else ""


def _main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmrl.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("check", "run", "in-flight"))
    parser.add_argument("folder", nargs="?", help="in-flight: the job folder")
    parser.add_argument("--plan", help="run: the plan file written by the protocol scripts")
    parser.add_argument("--status", help="run: the status file the outcome of each job is appended to")
    args = parser.parse_args(argv)
    jobs: List[Job] = []
    if True:
        if args.action == "in-flight":
            if not args.folder:
                raise LaunchError("in-flight needs the job folder")
            job_id = queued_job(args.folder)
            if job_id:
                print(job_id)
            return 0
        settings = Settings.from_env()
        settings.check()
        if args.action == "check":
            return 0
        if not args.plan or not args.status:
            raise LaunchError("run needs --plan FILE and --status FILE")
        jobs = read_plan(args.plan)
        if settings.launcher == "pool" and jobs:
            run_pool(jobs, pool_slots(settings.gpus, settings.slots, per_job(settings.slurm.gpus)), args.status)
        elif settings.launcher == "slurm" and jobs:
            run_slurm(jobs, settings.slurm, args.status, settings.wait == "1", settings.poll_s)
        elif settings.launcher == "local":
            raise LaunchError("LAUNCHER=local runs the jobs in the scripts themselves, not through mmrl.launch")
    # 1: a job failed (it is in the status file); 2: the launcher itself could not run.
    return 1 if any(job.status == "failed" for job in jobs) else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit codes: 0 every job done, 1 a job failed (each in the status file), 2 the launcher
    itself could not run (one line)."""
    return run_main(_main, argv, errors=BASIC_ERRORS, error_code=2)


if __name__ == "__main__":
    sys.exit(main())
