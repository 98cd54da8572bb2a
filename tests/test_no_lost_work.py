"""Nothing written is lost: the log is on disk line by line, a save killed half-way leaves nothing
behind once the next run starts, SIGTERM / SIGINT (Ctrl-C) end a run with one line and 143 / 130,
and rerunning the same command resumes; files get the user's umask."""
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap

from tests.train_runs import (
    REPO,
    assert_clean_error,
    checkpoint_dir,
    finish,
    log_text,
    newest_log,
    start,
    temporaries,
    train,
    wait_for,
)

# 10 classes x 4 shots / batch 4 = 10 batches per epoch, each printed.
RUN = ["DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "3", "TRAIN.PRINT_FREQ", "1", "DATALOADER.NUM_WORKERS", "0"]
UMASK = 0o027


def _umask():
    os.umask(UMASK)


def _interrupt(proc, signum):
    os.kill(proc.pid, signum)
    done = finish(proc)
    return done, assert_clean_error(done, 128 + signum, "interrupted")


def _leave_a_half_written_save(folder):
    """A real atomic_write killed (SIGKILL, by pid) while it writes: its temporary file stays."""
    script = textwrap.dedent(f"""
        import sys, time
        from mmrl.dassl.utils import atomic_write
        def write(f):
            f.write(b"x" * 1000); f.flush(); print("writing", flush=True); time.sleep(600)
        atomic_write({os.path.join(folder, "model.pth.tar-3")!r}, write)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return temporaries(folder)


def test_kills_lose_no_line_and_rerunning_resumes(tmp_path):
    root, out = tmp_path / "data", tmp_path / "out"

    # 1. kill -9 right after a progress line appeared on the console: the log already holds it.
    proc = start(root, out, *RUN, preexec_fn=_umask)
    seen = wait_for(proc, r"^epoch \[2/3\] batch \[2/10\]")
    os.kill(proc.pid, signal.SIGKILL)
    finish(proc)
    log = log_text(out)
    assert log.endswith("\n")
    progress = [line for line in seen if line.startswith("epoch [")]
    assert progress[-1] in log and len(progress) == 12
    # Everything printed once the log is set up ("Setting fixed seed" comes before it, as in Dassl).
    logged = seen[seen.index("** Arguments **\n") - 1:]
    assert all(line in log for line in logged)

    folder = checkpoint_dir(out)
    leftovers = _leave_a_half_written_save(folder)
    assert leftovers and leftovers[0].startswith(".model.pth.tar-3.")

    # 2. SIGTERM (a scheduler) in epoch 3 of the rerun: one line, 143, in the log too.
    proc = start(root, out, *RUN, preexec_fn=_umask)
    wait_for(proc, r"^epoch \[3/3\] batch \[2/10\]")
    done, line = _interrupt(proc, signal.SIGTERM)
    assert re.fullmatch(r"SIGTERM: interrupted at epoch 3, batch \d+; rerun the same command to resume from "
                        r"epoch 2", line), line
    log = newest_log(out)
    assert "Previous epoch: 1" in log
    assert f"Removed {os.path.join(folder, leftovers[0])}, left by a save that was interrupted" in log
    assert log.rstrip("\n").endswith(line)
    assert temporaries(folder) == []

    # 3. The same command finishes the run from epoch 2.
    done = train(root, out, *RUN, preexec_fn=_umask)
    assert done.returncode == 0, done.stderr[-3000:]
    log = newest_log(out)
    assert "Previous epoch: 2" in log and "epoch [3/3] batch [10/10]" in log and "* accuracy:" in log
    assert "epoch [2/3]" not in log
    assert sorted(os.listdir(folder)) == ["checkpoint", "model.pth.tar-3"]

    # Checkpoints, the pointer, the config record and the logs follow the umask (0640), not 0600.
    expected = 0o666 & ~UMASK
    for path in (os.path.join(folder, "checkpoint"), os.path.join(folder, "model.pth.tar-3"),
                 os.path.join(str(out), "config.yaml"), os.path.join(str(out), "log.txt")):
        assert stat.S_IMODE(os.stat(path).st_mode) == expected, path


def test_ctrl_c_before_training_says_so(tmp_path):
    proc = start(tmp_path / "data", tmp_path / "out", *RUN)
    wait_for(proc, r"^Loading dataset: SyntheticDemo")
    done, line = _interrupt(proc, signal.SIGINT)
    assert done.returncode == 130
    assert line.startswith("SIGINT: interrupted") and "rerun the same command" in line
    assert not os.path.isdir(checkpoint_dir(tmp_path / "out"))

