"""The launchers of the sweeps (LAUNCHER=local, pool, slurm) on the demo: the same table and
per-job results whichever ran the jobs, test jobs after their train jobs, the same skip /
rerun / FORCE rules, failed jobs reported with their logs, a SLURM job requeued mid-training
resuming at its last epoch, and the launchers' error messages. The SLURM tests submit to a
real SLURM (scripts/ci/start_slurm.sh starts one on this machine, with a second node for jobs of two)."""
import glob
import os
import random
import re
import socket
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import pytest

from mmrl.launch import SLURM_ACTIVE
from test_scripts import fake_python, final_accuracy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Two epochs keep the sweeps short; every launcher runs the same commands. Seeded augmentation,
# which every distributed run uses, gives one-process jobs the augmented batches of jobs of
# several processes, so that the two make the same numbers.
OPTS = "OPTIM.MAX_EPOCH 2 DATALOADER.SEEDED_AUGMENTATION True"
SEEDS = (1, 2)
TRAIN = "base2new/train_base/demo/shots_16/MMRL/demo/seed{}"
TEST = "base2new/test_new/demo/shots_16/MMRL/demo/seed{}"
STAMP = re.compile(r"^=== (.+): (started|finished) (\S+) ")


def sweep(env: Dict[str, str], *args: str, check: bool = True, script: str = "scripts/base_to_novel.sh"
          ) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", script, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        pytest.fail(f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def sweep_env(data: str, output: str, launcher: str, **extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(DATA=data, OUTPUT=output, PYTHON=sys.executable, OPTS=OPTS, FORCE="0", DATASETS="demo",
               SEEDS=" ".join(map(str, SEEDS)), LAUNCHER=launcher, WAIT="1", WAIT_POLL_S="0.5", JOB_TIME="20")
    env.update(extra)
    return env


def job_dirs(output: str) -> List[str]:
    return [os.path.join(output, tail.format(seed)) for seed in SEEDS for tail in (TRAIN, TEST)]


def results(output: str) -> Dict[str, float]:
    return {os.path.relpath(d, output): final_accuracy(os.path.join(d, "log.txt")) for d in job_dirs(output)}


def table(stdout: str) -> List[str]:
    return [line for line in stdout.splitlines() if line.startswith("|")]


def summary(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("Sweep summary")]
    assert len(lines) == 1, stdout[-3000:]
    return lines[0]


def job_times(log: str) -> Tuple[str, str]:
    """(first start, last finish) of the launcher's header lines in a job's log."""
    starts, ends = [], []
    with open(log) as f:
        for line in f:
            match = STAMP.match(line)
            if match:
                (starts if match.group(2) == "started" else ends).append(match.group(3))
    assert starts and ends, f"no start/finish lines in {log}"
    return starts[0], ends[-1]


def slurm_log(job_dir: str) -> str:
    logs = glob.glob(os.path.join(job_dir, "slurm", "*_0_log.out"))
    assert len(logs) == 1, logs
    return logs[0]


def assert_tests_after_trains(output: str, log_of) -> None:
    for seed in SEEDS:
        _, train_end = job_times(log_of(os.path.join(output, TRAIN.format(seed))))
        test_start, _ = job_times(log_of(os.path.join(output, TEST.format(seed))))
        assert test_start >= train_end, (seed, train_end, test_start)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("launch-data"))


@pytest.fixture(scope="module")
def local_sweep(data, tmp_path_factory) -> Tuple[str, subprocess.CompletedProcess]:
    """The reference: the demo base-to-novel sweep, 2 seeds, one job after another."""
    output = str(tmp_path_factory.mktemp("local") / "output")
    start = time.time()
    proc = sweep(sweep_env(data, output, "local"), "MMRL")
    print(f"local sweep: {time.time() - start:.1f}s")
    return output, proc


def test_local_sweep_summary(local_sweep):
    output, proc = local_sweep
    assert summary(proc.stdout) == "Sweep summary (local): 4 done, 0 skipped (existing results), 0 failed"
    assert all(value is not None for value in results(output).values())
    assert "| demo" in "\n".join(table(proc.stdout))


def test_pool_matches_sequential(local_sweep, data, tmp_path):
    output = str(tmp_path / "output")
    start = time.time()
    proc = sweep(sweep_env(data, output, "pool"), "MMRL", "--slots", "2")
    print(f"pool sweep (2 slots): {time.time() - start:.1f}s")
    assert results(output) == results(local_sweep[0])
    assert table(proc.stdout) == table(local_sweep[1].stdout)
    assert summary(proc.stdout) == "Sweep summary (pool): 4 done, 0 skipped (existing results), 0 failed"
    # Two jobs at a time, each with its share of the cores, each logging into its own folder.
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert proc.stdout.count(f"(CPU, {threads} threads)") == 4
    for job_dir in job_dirs(output):
        with open(os.path.join(job_dir, "job.log")) as f:
            assert f"Running: {sys.executable} train.py" in f.read()
    assert_tests_after_trains(output, lambda d: os.path.join(d, "job.log"))


def test_pool_jobs_of_two_processes_match_one_process(local_sweep, data, tmp_path):
    """--gpus-per-job 2 on CPU: each job runs under torchrun as 2 Gloo processes, and gives the
    one-process job's result (seed 1 of the reference sweep: its train and test jobs)."""
    output = str(tmp_path / "output")
    proc = sweep(sweep_env(data, output, "pool", SEEDS="1"), "MMRL", "--slots", "1", "--gpus-per-job", "2")
    assert summary(proc.stdout) == "Sweep summary (pool): 2 done, 0 skipped (existing results), 0 failed"
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert proc.stdout.count(f"(CPU, 2 processes, {threads} threads each)") == 2
    for tail in (TRAIN, TEST):
        job_dir = os.path.join(output, tail.format(1))
        with open(os.path.join(job_dir, "log.txt")) as f:
            assert "Distributed run: 2 processes (gloo)" in f.read()
        with open(os.path.join(job_dir, "job.log")) as f:
            assert f"Running: {sys.executable} -m mmrl.torchrun --standalone --nproc_per_node 2 train.py" in f.read()
        assert final_accuracy(os.path.join(job_dir, "log.txt")) == \
            final_accuracy(os.path.join(local_sweep[0], tail.format(1), "log.txt"))


def test_a_jobs_torchrun_ends_in_one_line(tmp_path):
    """The jobs' torchrun (python -m mmrl.torchrun): a failed rank ends the job with one line naming
    it and that rank's exit status, a SIGTERM to the agent with 143, neither with torchrun's traceback."""
    script = tmp_path / "ranks.py"
    script.write_text("import os, sys, time\n"
                      "if os.environ['RANK'] == '1' and sys.argv[1] == 'fail':\n"
                      "    print('rank 1: Error: the thing named', file=sys.stderr)\n"
                      "    sys.exit(3)\n"
                      "open(os.path.join(sys.argv[2], os.environ['RANK']), 'w').close()\n"
                      "time.sleep(120)\n")
    env = {k: v for k, v in os.environ.items() if k != "MMRL_DEBUG"}
    runner = [sys.executable, "-m", "mmrl.torchrun", "--standalone", "--nproc_per_node", "2", str(script)]
    failed = subprocess.run([*runner, "fail", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert failed.returncode == 3, failed.stderr[-2000:]
    assert "Traceback" not in failed.stderr and "rank 1: Error: the thing named" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("Error: torchrun: rank 1 exited with code 3;")

    started = tmp_path / "started"
    started.mkdir()
    agent = subprocess.Popen([*runner, "wait", str(started)], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(os.listdir(started)) < 2 and agent.poll() is None:
        time.sleep(0.2)
    agent.terminate()  # both ranks are running
    _, err = agent.communicate(timeout=300)
    assert agent.returncode == 143, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "torchrun: stopped by SIGTERM"


def test_gpus_per_job_splits_the_pool_and_is_checked():
    from mmrl.launch import LaunchError, per_job, pool_slots

    # GPUS=0,1,2,3 with 2 per job is two slots of two GPUs.
    assert [s["CUDA_VISIBLE_DEVICES"] for s in pool_slots("0,1,2,3", "", 2)] == ["0,1", "2,3"]
    assert per_job("") == per_job("1") == 1 and per_job("4") == 4
    with pytest.raises(LaunchError, match="GPUS lists 3 GPUs \\('0,1,2'\\), not a multiple of --gpus-per-job 2"):
        pool_slots("0,1,2", "", 2)
    with pytest.raises(LaunchError, match="JOB_GPUS \\(--gpus-per-job\\) must be a whole number, got 'two'"):
        per_job("two")


def node_env(job, slurm: Dict[str, str]) -> Dict[str, str]:
    """The environment a SLURM job's task gives the job's command on its node (SweepJob), for
    SLURM's variables ``slurm``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_", "OMP_", "MKL_"))}
    return job.child_env({**env, **slurm})


def job_runner(env: Dict[str, str]) -> List[str]:
    proc = subprocess.run(["bash", "-c", 'source scripts/common.sh && job_runner && printf "%s\\n" "${RUNNER[@]}"'],
                          cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def test_multi_node_job_command_line():
    """A SLURM job of 2 nodes of 4 GPUs: one task per node, each starting one torchrun of 4
    processes at the c10d rendezvous on the job's first node (its port from the job id)."""
    pytest.importorskip("submitit")  # its parser reads SLURM's node lists
    from mmrl.launch import SlurmOptions, SweepJob

    options = SlurmOptions(partition="", gpus="4", cpus="16", mem="", time="60", account="", qos="",
                           sbatch_args="", max_requeues="3", nodes="2")
    params = options.parameters()
    assert (params["nodes"], params["ntasks_per_node"], params["gpus_per_node"]) == (2, 1, 4)
    job = SweepJob("tag", ["true"], REPO, threads=16, gpus_per_job=4, nodes=2)
    slurm = {"SLURM_JOB_ID": "123456", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NNODES": "2", "SLURM_NODEID": "1"}
    env = node_env(job, dict(slurm, PYTHON="python"))
    assert {k: env[k] for k in ("JOB_RDZV_ENDPOINT", "JOB_RDZV_ID", "JOB_NODES", "JOB_NODE", "JOB_GPUS",
                                "OMP_NUM_THREADS")} == {
        "JOB_RDZV_ENDPOINT": "gpu07:32956", "JOB_RDZV_ID": "123456", "JOB_NODES": "2", "JOB_NODE": "1",
        "JOB_GPUS": "4", "OMP_NUM_THREADS": "4"}
    assert job_runner(env) == ["python", "-m", "mmrl.torchrun", "--nnodes", "2", "--nproc_per_node", "4",
                               "--rdzv_backend", "c10d", "--rdzv_endpoint", "gpu07:32956", "--rdzv_id", "123456"]
    # One process on one node: train.py itself, no rendezvous.
    single = SweepJob("tag", ["true"], REPO, threads=None)
    assert job_runner(node_env(single, dict(slurm, SLURM_NNODES="1", SLURM_NODEID="0", PYTHON="python"))) == ["python"]
    # A job pickled before jobs had several processes or nodes still runs (as one process).
    old = SweepJob.__new__(SweepJob)
    old.__setstate__({"tag": "tag", "argv": ["true"], "cwd": REPO, "threads": None, "_child": None})
    assert (old.gpus_per_job, old.nodes) == (1, 1)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_two_nodes_share_one_job(local_sweep, data, tmp_path):
    """The nodes of a 2-node SLURM job, here two tasks on this machine with the variables SLURM
    gives them: each runs the job's command (scripts/job.sh), each starts a torchrun of one
    process, they meet at the rendezvous, and the job gives the one-process result. Node 0 alone
    sets the unfinished log aside and prints the result; node 1 only runs."""
    pytest.importorskip("submitit")
    from mmrl.launch import RDZV_BASE_PORT, RDZV_PORTS, SweepJob

    output = str(tmp_path / "output")
    job_dir = os.path.join(output, TRAIN.format(1))
    os.makedirs(job_dir)
    with open(os.path.join(job_dir, "log.txt"), "w") as f:
        f.write("epoch [1/2] batch [5/15]\n")
    # A job id whose rendezvous port is free here.
    port = next(p for p in random.sample(range(RDZV_BASE_PORT, RDZV_BASE_PORT + RDZV_PORTS), 100) if port_free(p))
    job_id = str(port - RDZV_BASE_PORT)
    tag = "MMRL demo seed1 base2new_train"
    argv = ["bash", "scripts/job.sh", "MMRL", data, tag, job_dir, "train", "1", "demo", "demo", "",
            "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base", "TASK", "B2N", *OPTS.split()]
    job = SweepJob(tag, argv, REPO, threads=None, gpus_per_job=1, nodes=2)
    procs = []
    for node in ("0", "1"):
        env = node_env(job, {"SLURM_JOB_ID": job_id, "SLURM_JOB_NODELIST": "127.0.0.1,localhost",
                             "SLURM_NNODES": "2", "SLURM_NODEID": node})
        env.update(PYTHON=sys.executable, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    for out in outs:
        assert (f"Running: {sys.executable} -m mmrl.torchrun --nnodes 2 --nproc_per_node 1 --rdzv_backend c10d "
                f"--rdzv_endpoint 127.0.0.1:{port} --rdzv_id {job_id} train.py") in out
    assert f"Unfinished run at {job_dir}" in outs[0] and "Unfinished" not in outs[1]
    assert len(glob.glob(os.path.join(job_dir, "log.txt.unfinished-*"))) == 1
    accuracy = final_accuracy(os.path.join(job_dir, "log.txt"))
    assert accuracy == final_accuracy(os.path.join(local_sweep[0], TRAIN.format(1), "log.txt"))
    printed = re.search(rf"^\[{re.escape(tag)}\] accuracy ([\d.]+)% ", outs[0], re.M)
    assert printed and float(printed.group(1)) == accuracy, outs[0][-2000:]
    # (The engine's rank 0, which prints the run's output, may be either node's process.)
    assert f"[{tag}] node 1: its torchrun exited with 0" in outs[1] and f"[{tag}] accuracy" not in outs[1]
    with open(os.path.join(job_dir, "log.txt")) as f:
        assert "Distributed run: 2 processes (gloo)" in f.read()


@pytest.mark.slurm
def test_slurm_matches_local(local_sweep, data, tmp_path):
    """Jobs of 2 processes (--gpus-per-job 2: 2 GPUs per node asked of SLURM, 2 Gloo processes
    here), each started by the job's torchrun at the rendezvous SLURM's variables give, make the
    one-process sweep's table."""
    output = str(tmp_path / "output")
    start = time.time()
    proc = sweep(sweep_env(data, output, "slurm"), "MMRL", "--gpus-per-job", "2", "--nodes-per-job", "1")
    print(f"slurm sweep (2 processes per job, WAIT=1): {time.time() - start:.1f}s")
    assert table(proc.stdout) == table(local_sweep[1].stdout)
    assert results(output) == results(local_sweep[0])
    assert summary(proc.stdout) == "Sweep summary (slurm): 4 done, 0 skipped (existing results), 0 failed"
    # Submitted at once, each test job held by its train job (afterok), and run after it.
    ids = {}
    for job_dir in job_dirs(output):
        with open(os.path.join(job_dir, "slurm", "job_id")) as f:
            ids[os.path.relpath(job_dir, output)] = f.read().strip()
    for seed in SEEDS:
        test_id, train_id = ids[TEST.format(seed)], ids[TRAIN.format(seed)]
        assert re.search(rf"^\[slurm\] submitted MMRL demo seed{seed} base2new_test: job {test_id} after {train_id} ",
                         proc.stdout, re.M)
    assert proc.stdout.index("[slurm] waiting") > max(proc.stdout.index(f"job {i}") for i in ids.values())
    assert_tests_after_trains(output, slurm_log)
    from mmrl.launch import RDZV_BASE_PORT, RDZV_PORTS

    for job_dir in job_dirs(output):
        job_id = ids[os.path.relpath(job_dir, output)]
        job = scontrol_job(job_id)
        assert (job["NumNodes"], job["NumTasks"]) == ("1", "1") and "gpu:2" in job["TresPerNode"], job
        with open(slurm_log(job_dir)) as f:
            assert (f"Running: {sys.executable} -m mmrl.torchrun --nnodes 1 --nproc_per_node 2 "
                    f"--rdzv_backend c10d --rdzv_endpoint {job['NodeList']}:{RDZV_BASE_PORT + int(job_id) % RDZV_PORTS} "
                    f"--rdzv_id {job_id} train.py") in f.read()
        with open(os.path.join(job_dir, "log.txt")) as f:
            assert "Distributed run: 2 processes (gloo)" in f.read()


@pytest.mark.slurm
def test_slurm_job_of_two_nodes(local_sweep, data, tmp_path):
    """--nodes-per-job 2 on a real SLURM of two nodes (scripts/ci/start_slurm.sh's partition
    "two": two slurmd on this machine), one process each: a task per node, each starting its
    torchrun at the rendezvous on the job's first node; the job gives the one-process result,
    and node 0 alone prints it."""
    partitions = subprocess.run(["sinfo", "-h", "-o", "%R %D"], capture_output=True, text=True).stdout.split("\n")
    if "two 2" not in partitions:
        message = "no SLURM partition 'two' of 2 nodes (scripts/ci/start_slurm.sh makes one)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    output = str(tmp_path / "output")
    # One thread per process: the two nodes share this machine's cores.
    env = sweep_env(data, output, "slurm", JOB_PARTITION="two", JOB_NODES="2", OMP_NUM_THREADS="1")
    proc = sweep(env, "demo", "1", script="scripts/mmrl/base2new_train.sh")
    assert summary(proc.stdout) == "Sweep summary (slurm): 1 done, 0 skipped (existing results), 0 failed"
    job_dir = os.path.join(output, TRAIN.format(1))
    with open(os.path.join(job_dir, "slurm", "job_id")) as f:
        job_id = f.read().strip()
    job = scontrol_job(job_id)
    assert (job["NumNodes"], job["NumTasks"], job["Partition"]) == ("2", "2", "two"), job
    accuracy = final_accuracy(os.path.join(job_dir, "log.txt"))
    assert accuracy == final_accuracy(os.path.join(local_sweep[0], TRAIN.format(1), "log.txt"))
    with open(os.path.join(job_dir, "log.txt")) as f:
        assert "Distributed run: 2 processes (gloo)" in f.read()
    tag = "MMRL demo seed1 base2new_train"
    logs = sorted(glob.glob(os.path.join(job_dir, "slurm", f"{job_id}_*_log.out")))
    assert [os.path.basename(log) for log in logs] == [f"{job_id}_0_log.out", f"{job_id}_1_log.out"]
    outs = [open(log).read() for log in logs]
    for node, out in enumerate(outs):
        assert f"(SLURM job {job_id}, node {node} of 2) ===" in out
        assert "-m mmrl.torchrun --nnodes 2 --nproc_per_node 1 --rdzv_backend c10d " in out
    assert re.search(rf"^\[{re.escape(tag)}\] accuracy [\d.]+% ", outs[0], re.M)
    assert f"[{tag}] node 1: its torchrun exited with 0" in outs[1] and f"[{tag}] accuracy" not in outs[1]


# ---------------------------------------------------------------------------------------------
# The rules, with a stand-in interpreter: train.py writes a finished log, the rest is python.



@pytest.mark.parametrize("launcher", ["local", "pool", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_skip_rerun_force_under_every_launcher(launcher, tmp_path):
    fake = fake_python(tmp_path / "python", others=f'exec {sys.executable} "$@"')
    output = str(tmp_path / "output")
    env = sweep_env(str(tmp_path / "data"), output, launcher, PYTHON=fake, SLOTS="2")
    finished, unfinished = os.path.join(output, TRAIN.format(1)), os.path.join(output, TEST.format(1))
    os.makedirs(finished)
    with open(os.path.join(finished, "log.txt"), "w") as f:
        f.write("Finish training\n=> result\n* accuracy: 50.0%\n")
    os.makedirs(unfinished)
    with open(os.path.join(unfinished, "log.txt"), "w") as f:
        f.write("epoch [1/2] batch [5/15]\n")

    proc = sweep(env, "MMRL")
    assert summary(proc.stdout) == f"Sweep summary ({launcher}): 3 done, 1 skipped (existing results), 0 failed"
    assert f"Oops! The results exist at {finished} (so skip this job)" in proc.stdout
    assert f"Unfinished run at {unfinished}" in proc.stdout
    assert len(glob.glob(os.path.join(unfinished, "log.txt.unfinished-*"))) == 1
    assert results(output) == {
        TRAIN.format(1): 50.0, TEST.format(1): 12.3, TRAIN.format(2): 12.3, TEST.format(2): 12.3}
    assert os.listdir(finished) == ["log.txt"]  # nothing ran there

    proc = sweep(dict(env, FORCE="1"), "MMRL")
    assert summary(proc.stdout) == f"Sweep summary ({launcher}): 4 done, 0 skipped (existing results), 0 failed"
    assert f"FORCE=1: removing {finished}" in proc.stdout
    assert results(output)[TRAIN.format(1)] == 12.3
    assert not glob.glob(os.path.join(unfinished, "log.txt.unfinished-*"))


@pytest.mark.slurm
def test_queued_jobs_are_not_submitted_again(tmp_path):
    fake = fake_python(tmp_path / "python", others=f'exec {sys.executable} "$@"')
    output = str(tmp_path / "output")
    # Extra sbatch options reach the jobs: these wait an hour before they may start.
    env = sweep_env(str(tmp_path / "data"), output, "slurm", PYTHON=fake, SEEDS="1", WAIT="0",
                    JOB_SBATCH_ARGS="--begin=now+3600 --comment=mmrl-test")
    proc = sweep(env, "MMRL")
    assert summary(proc.stdout).endswith("0 failed, 2 queued in SLURM")
    assert "| demo" not in proc.stdout  # no table before the jobs have run
    ids = []
    for job_dir in job_dirs(output)[:2]:
        with open(os.path.join(job_dir, "slurm", "job_id")) as f:
            ids.append(f.read().strip())
    try:
        assert all(scontrol_job(i)["Comment"] == "mmrl-test" for i in ids)
        proc = sweep(env, "MMRL")
        for tag, job_id in zip(("base2new_train", "base2new_test"), ids):
            assert f"[MMRL demo seed1 {tag}] already queued or running as SLURM job {job_id} (not submitted again)" \
                in proc.stdout
        assert "[slurm] submitted" not in proc.stdout
        assert summary(proc.stdout).endswith("0 failed, 2 queued in SLURM")
    finally:
        subprocess.run(["scancel", *ids], check=True)


@pytest.mark.parametrize("launcher", ["local", "pool", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_failed_job_reported_with_its_log(launcher, data, tmp_path):
    output = str(tmp_path / "output")
    # A key the config does not have: train.py stops with an error.
    env = sweep_env(data, output, launcher, SEEDS="1", SLOTS="2", OPTS="OPTIM.NO_SUCH_KEY 1")
    proc = sweep(env, "MMRL", check=False)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    train_dir = os.path.join(output, TRAIN.format(1))
    lines = proc.stdout.splitlines()
    failed = lines[lines.index("Failed jobs (with their logs):") + 1:]
    assert failed[0].startswith(f"  MMRL demo seed1 base2new_train: ")
    if launcher == "local":
        assert "its error is in the output above" in failed[0]
        assert "NO_SUCH_KEY" in proc.stdout + proc.stderr
        assert summary(proc.stdout).endswith("0 done, 0 skipped (existing results), 1 failed")
        return
    log = failed[0].split(": ", 1)[1].split(" (")[0]
    assert log.startswith(train_dir + os.sep) and os.path.isfile(log)
    with open(log) as f:
        assert "NO_SUCH_KEY" in f.read()
    # The test job needs the model that was never trained: it is not run, and it is reported.
    assert failed[1].startswith("  MMRL demo seed1 base2new_test: ")
    assert summary(proc.stdout).endswith("0 done, 0 skipped (existing results), 2 failed")
    assert final_accuracy_or_none(os.path.join(output, TEST.format(1))) is None


@pytest.mark.parametrize("launcher", ["pool", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_a_job_that_cannot_start_fails_alone(launcher, data, tmp_path):
    output = str(tmp_path / "output")
    blocked = os.path.join(output, TRAIN.format(2))
    os.makedirs(os.path.dirname(blocked))
    with open(blocked, "w") as f:
        f.write("a file where the job's folder goes")
    env = sweep_env(data, output, launcher, SLOTS="2", OPTS="OPTIM.MAX_EPOCH 1")
    proc = sweep(env, "MMRL", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary(proc.stdout).endswith("2 done, 0 skipped (existing results), 2 failed")
    lines = proc.stdout.splitlines()
    failed = lines[lines.index("Failed jobs (with their logs):") + 1:][:2]
    assert failed == [f"  MMRL demo seed2 base2new_train: cannot start: its folder {blocked} is a file; "
                      "move the file away or choose another OUTPUT",
                      "  MMRL demo seed2 base2new_test: not run: the job it needs (MMRL demo seed2 base2new_train) failed"]
    assert not lines[lines.index("Failed jobs (with their logs):") + 3:] or \
        not lines[lines.index("Failed jobs (with their logs):") + 3].startswith("  MMRL")
    # Seed 1 ran to its end, its result in the table; the blocking file is untouched.
    assert final_accuracy(os.path.join(output, TRAIN.format(1), "log.txt")) is not None
    assert final_accuracy(os.path.join(output, TEST.format(1), "log.txt")) is not None
    assert [row for row in table(proc.stdout) if row.startswith("| demo")][0].count("(1)") == 2
    assert open(blocked).read() == "a file where the job's folder goes"


def final_accuracy_or_none(job_dir: str):
    log = os.path.join(job_dir, "log.txt")
    return final_accuracy(log) if os.path.isfile(log) else None


def scontrol_job(job_id: str) -> Dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait_for(what: str, condition, timeout: float = 600.0, every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.slurm
def test_requeued_job_resumes_at_its_last_epoch(data, tmp_path):
    output = str(tmp_path / "output")
    env = sweep_env(data, output, "slurm", WAIT="0", OPTS="OPTIM.MAX_EPOCH 4")
    proc = sweep(env, "demo", "1", script="scripts/mmrl/base2new_train.sh")
    assert "1 queued in SLURM" in summary(proc.stdout)
    job_dir = os.path.join(output, TRAIN.format(1))
    with open(os.path.join(job_dir, "slurm", "job_id")) as f:
        job_id = f.read().strip()
    log = os.path.join(job_dir, "log.txt")
    pointer = os.path.join(job_dir, "MultiModalRepresentationLearner", "checkpoint")

    def in_epoch_2() -> bool:
        return os.path.isfile(pointer) and open(pointer).read().strip() == "model.pth.tar-1"

    wait_for("the checkpoint of the first epoch", in_epoch_2)
    # What SLURM sends before a time limit (submitit's signal): the checkpoint hook stops the
    # run and requeues the job.
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_for("the requeue", lambda: scontrol_job(job_id).get("Restarts") == "1")
    wait_for("the requeued job to end", lambda: scontrol_job(job_id)["JobState"] not in SLURM_ACTIVE)
    assert scontrol_job(job_id)["JobState"] == "COMPLETED"

    assert len(glob.glob(os.path.join(job_dir, "log.txt.unfinished-*"))) == 1
    with open(log) as f:
        resumed = f.read()
    assert f"Found checkpoint at {job_dir} (will resume training)" in resumed
    last = int(re.search(r"^Previous epoch: (\d+)$", resumed, re.M).group(1))
    assert 1 <= last < 4, f"the signal came after epoch {last}: too late to test a resume"
    epochs = [int(e) for e in re.findall(r"^epoch \[(\d+)/4\]", resumed, re.M)]
    assert epochs[0] == last + 1 and epochs[-1] == 4
    assert final_accuracy(log) is not None
    with open(slurm_log(job_dir)) as f:
        out = f.read()
    assert "stopping for requeue" in out and f"Requeued job {job_id}" in out
    # The finished job is not submitted again.
    proc = sweep(env, "demo", "1", script="scripts/mmrl/base2new_train.sh")
    assert summary(proc.stdout) == "Sweep summary (slurm): 0 done, 1 skipped (existing results), 0 failed"


# ---------------------------------------------------------------------------------------------
# Errors, before anything runs.


def error_of(env: Dict[str, str], *args: str) -> str:
    proc = sweep(env, "MMRL", *args, check=False)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(env["OUTPUT"])
    return [line for line in proc.stderr.strip().splitlines() if not line.startswith("(set MMRL_DEBUG")][-1]


def test_unknown_launcher(tmp_path):
    env = sweep_env(str(tmp_path / "data"), str(tmp_path / "output"), "cloud")
    assert error_of(env) == "Error: unknown LAUNCHER 'cloud': use one of local, pool, slurm"


def test_pool_needs_gpus_or_slots(tmp_path):
    env = sweep_env(str(tmp_path / "data"), str(tmp_path / "output"), "pool")
    env.pop("SLOTS", None)
    env.pop("GPUS", None)
    assert error_of(env) == ("Error: LAUNCHER=pool needs GPUS=0,1,... (one job per GPU) or SLOTS=N "
                             "(N CPU jobs at a time)")
    assert error_of(env, "--gpus", "0,x") == ("Error: GPUS must list GPU indices (or UUIDs) separated by "
                                             "commas, e.g. GPUS=0,1,2,3; got '0,x'")


def test_several_nodes_need_slurm(tmp_path):
    for launcher in ("local", "pool"):
        env = sweep_env(str(tmp_path / "data"), str(tmp_path / "output"), launcher, SLOTS="2")
        assert error_of(env, "--nodes-per-job", "2") == (
            f"Error: JOB_NODES (--nodes-per-job) 2 needs --launcher slurm: LAUNCHER={launcher} runs its jobs on "
            "this one machine")
    # A protocol script run on its own checks it too, before its first job.
    env = sweep_env(str(tmp_path / "data"), str(tmp_path / "output"), "local", JOB_NODES="2")
    proc = sweep(env, "demo", "1", check=False, script="scripts/mmrl/base2new_train.sh")
    assert proc.returncode == 1 and not os.path.exists(env["OUTPUT"])
    assert "Error: JOB_NODES (--nodes-per-job) 2 needs --launcher slurm" in proc.stderr
    assert error_of(env, "--nodes-per-job", "0") == (
        "Error: JOB_NODES (--nodes-per-job) must be a positive whole number, got '0'")


def test_unknown_option(tmp_path):
    env = sweep_env(str(tmp_path / "data"), str(tmp_path / "output"), "local")
    assert error_of(env, "--partiton", "gpu").startswith("Error: unknown option --partiton: the options are ")


def test_slurm_without_submitit(tmp_path):
    # An interpreter without submitit (a bare venv: the launcher check needs nothing else).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    env = sweep_env(str(tmp_path / "data"), str(tmp_path / "output"), "slurm",
                    PYTHON=str(tmp_path / "venv" / "bin" / "python"), PYTHONPATH=REPO)
    assert "Error: LAUNCHER=slurm cannot submit: the Python package submitit is not installed " \
           "(pip install -e '.[slurm]', or pip install submitit)" in error_of(env)


def test_slurm_without_sbatch(tmp_path):
    pytest.importorskip("submitit")
    # The PATH's commands, less sbatch.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name != "sbatch" and not (bin_dir / name).exists():
                (bin_dir / name).symlink_to(os.path.join(folder, name))
    env = sweep_env(str(tmp_path / "data"), str(tmp_path / "output"), "slurm", PATH=str(bin_dir))
    assert error_of(env) == (
        "Error: LAUNCHER=slurm cannot submit: SLURM's sbatch is not on the PATH (run the sweep where SLURM jobs "
        "are submitted, e.g. a login node, or add SLURM's bin folder to PATH)")


def test_sweep_without_its_data_folder(tmp_path):
    env = sweep_env(str(tmp_path / "no-such-folder"), str(tmp_path / "output"), "local", DATASETS="demo dtd")
    assert error_of(env) == (f"Error: DATA={tmp_path / 'no-such-folder'} is not a folder: set DATA to the folder "
                             "that holds your datasets (nothing was run)")
