"""train.py as a user runs it, for the tests of what a run does when something goes wrong.

Every run is a real subprocess of train.py on the synthetic demo with the miniature random CLIP;
runs that the tests interrupt are started with :func:`start` and signalled by pid at a moment
chosen from the lines they print.
"""
import os
import re
import shutil
import subprocess
import sys
import time
from typing import List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_FOLDER = "MultiModalRepresentationLearner"
DEMO = ["--seed", "1", "--trainer", "MMRL", "--dataset-config-file", "configs/datasets/demo.yaml",
        "--config-file", "configs/trainers/MMRL/demo.yaml"]
# 10 classes x 4 shots / batch 4: 10 batches per epoch; no worker processes unless a test asks.
SHORT = ["DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "2", "DATALOADER.NUM_WORKERS", "0"]
TIMEOUT = 900


def argv(root, out, *extra) -> List[str]:
    return [sys.executable, "train.py", "--root", str(root), *DEMO, "--output-dir", str(out), *map(str, extra)]


def train(root, out, *extra, preexec_fn=None, env=None) -> subprocess.CompletedProcess:
    """Run train.py to its end; ``extra`` goes after the demo's arguments (flags, then KEY VALUE);
    ``env``: variables added to the environment."""
    return subprocess.run(argv(root, out, *extra), cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
                          preexec_fn=preexec_fn, env={**os.environ, **env} if env else None)


def start(root, out, *extra, preexec_fn=None) -> subprocess.Popen:
    """Start train.py with its stdout on a pipe (read it with :func:`wait_for`)."""
    return subprocess.Popen(argv(root, out, *extra), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, bufsize=1, preexec_fn=preexec_fn)


def wait_for(proc: subprocess.Popen, pattern: str, timeout: float = TIMEOUT) -> List[str]:
    """Read the run's stdout until a line matches ``pattern``; returns the lines read so far."""
    lines: List[str] = []
    deadline = time.time() + timeout
    regex = re.compile(pattern)
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"train.py ended before printing {pattern!r}:\n{''.join(lines[-30:])}\n"
                                 f"{proc.stderr.read()[-3000:]}")
        lines.append(line)
        if regex.search(line):
            return lines
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s")


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def error_lines(proc) -> List[str]:
    """stderr without the third-party warnings every run prints (pkg_resources, DataLoader workers)."""
    keep = []
    for line in proc.stderr.splitlines():
        if "Warning" in line or line.startswith("  ") or not line.strip():
            continue
        keep.append(line)
    return keep


def assert_clean_error(proc, returncode: int, *named: str) -> str:
    """The run ended with ``returncode`` and an error line naming each of ``named``, no traceback;
    returns that line."""
    assert proc.returncode == returncode, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    assert "weights_only" not in proc.stderr
    lines = [line for line in error_lines(proc) if not line.startswith("(set MMRL_DEBUG")]
    assert lines, proc.stderr
    message = lines[-1]
    for name in named:
        assert name in message, (name, message)
    return message


def copy_run(src, dst) -> str:
    shutil.copytree(str(src), str(dst))
    return str(dst)


def checkpoint_dir(out) -> str:
    return os.path.join(str(out), MODEL_FOLDER)


def temporaries(folder) -> List[str]:
    return sorted(n for n in os.listdir(str(folder)) if n.endswith(".tmp"))


def mount_tmpfs(path, *options: str) -> bool:
    """Mount a tmpfs at ``path`` (root only); False where this machine does not allow it."""
    os.makedirs(str(path), exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    opts = ",".join(options) or "size=4m"
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def remount_read_only(path) -> bool:
    return subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True).returncode == 0


def unmount(path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def log_text(out, name: str = "log.txt") -> str:
    with open(os.path.join(str(out), name)) as f:
        return f.read()


def newest_log(out) -> Optional[str]:
    logs = sorted(n for n in os.listdir(str(out)) if n.startswith("log.txt"))
    return log_text(out, logs[-1]) if logs else None
