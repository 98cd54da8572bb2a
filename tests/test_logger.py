"""setup_logger: stdout tee into log.txt, existing logs kept."""
import re
import sys

import pytest

from mmrl.dassl.utils import Logger, restore_stdout, setup_logger


@pytest.fixture
def tee():
    yield
    restore_stdout()


def test_log_txt_receives_stdout(tmp_path, tee, capsys):
    out_dir = tmp_path / "run" / "seed1"
    path = setup_logger(str(out_dir))
    assert path == str(out_dir / "log.txt")
    print("hello log")
    sys.stdout.flush()
    assert (out_dir / "log.txt").read_text() == "hello log\n"
    assert "hello log" in capsys.readouterr().out


def test_existing_log_is_kept(tmp_path, tee):
    (tmp_path / "log.txt").write_text("old run\n")
    path = setup_logger(str(tmp_path))
    print("new run")
    sys.stdout.flush()
    assert (tmp_path / "log.txt").read_text() == "old run\n"
    assert re.fullmatch(r".*/log\.txt-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", path)
    with open(path) as f:
        assert f.read() == "new run\n"


def test_second_call_replaces_the_tee(tmp_path, tee):
    first = setup_logger(str(tmp_path / "a"))
    print("to a")
    second = setup_logger(str(tmp_path / "b"))
    print("to b")
    sys.stdout.flush()
    assert isinstance(sys.stdout, Logger)
    assert not isinstance(sys.stdout.console, Logger)
    assert open(first).read() == "to a\n"
    assert open(second).read() == "to b\n"


def test_two_calls_in_the_same_second_keep_all_logs(tmp_path, tee):
    paths = [setup_logger(str(tmp_path)) for _ in range(3)]
    assert len(set(paths)) == 3


def test_explicit_file_name(tmp_path, tee):
    assert setup_logger(str(tmp_path / "train.log")) == str(tmp_path / "train.log")


def test_restore_stdout(tmp_path):
    original = sys.stdout
    setup_logger(str(tmp_path))
    restore_stdout()
    assert sys.stdout is original
