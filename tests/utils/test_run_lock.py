"""One training process per run folder: a live holder is refused, a dead one frees the folder."""

import os
import signal
import subprocess
import sys
import time

import pytest

from talkinghead.utils.run_lock import LOCK_FILE, RunDirBusyError, hold_run_dir

pytestmark = pytest.mark.skipif(os.name != "posix", reason="fcntl locks are POSIX only")

HOLDER = """
import sys, time
from talkinghead.utils.run_lock import hold_run_dir
with hold_run_dir(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _start_holder(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_is_refused_and_named(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start_holder(run_dir)
    try:
        with pytest.raises(RunDirBusyError) as info:
            with hold_run_dir(run_dir):
                pass
        message = str(info.value)
        assert str(run_dir) in message and f"process {proc.pid}" in message and "--run-dir" in message
    finally:
        proc.kill()
        proc.wait()


def test_killed_holder_frees_the_folder(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start_holder(run_dir)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
    proc.wait()
    with hold_run_dir(run_dir):
        assert str(os.getpid()) in (run_dir / LOCK_FILE).read_text()


def test_lock_is_released_after_the_block_and_reentry_in_sequence_works(tmp_path):
    run_dir = tmp_path / "new" / "run"
    with hold_run_dir(run_dir) as held:
        assert held == run_dir and run_dir.is_dir()
    with hold_run_dir(run_dir):
        pass


def test_train_refuses_a_folder_another_process_trains_in(tmp_path, capsys):
    from pathlib import Path

    from talkinghead.cli import main

    config = Path(__file__).resolve().parents[2] / "configs" / "lsr" / "tiny.yaml"
    run_dir = tmp_path / "run"
    proc = _start_holder(run_dir)
    try:
        code = main(["train", str(config), f"data.root={tmp_path / 'no-data'}", "--run-dir", str(run_dir)])
    finally:
        proc.kill()
        proc.wait()
    err = capsys.readouterr().err
    assert code == 2 and f"process {proc.pid}" in err and "still training" in err
    assert not (run_dir / "checkpoints").exists()
