"""The command boundary: Ctrl-C at any moment, I/O errors a user can act on, the app's port and temp folders.

Each case asserts what a user sees: no traceback, one line, the right exit code, nothing left behind.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from talkinghead import cli
from talkinghead.cli import data as cli_data, evaluate as cli_evaluate, training as cli_training

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def ctrl_c_delivered() -> None:
    """A child's SIGINT back to the default: a test run started in the background (``... &``)
    inherits it ignored, and then no Ctrl-C these tests send would arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def python_ctrl_c_handler():
    """Python's own KeyboardInterrupt handler in this process for the test (see ``ctrl_c_delivered``)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_ctrl_c_while_the_command_starts_is_one_line(delay, tmp_path):
    """SIGINT while Python imports torch and builds the parser (the first seconds): exit 130, no traceback."""
    out = tmp_path / "out.mp4"
    # Real inputs, so the command is still starting (not refusing a missing file) when the signal lands.
    examples = Path(__file__).resolve().parents[1] / "examples"
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "animate",
                             "--source", str(examples / "portraits" / "sadtalker_happy.png"),
                             "--driving", str(examples / "videos" / "liveportrait_d18.mp4"), "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=ctrl_c_delivered)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert one_line(err).startswith("interrupted; ")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_the_cli_and_its_libraries_import_is_one_line(tmp_path):
    """SIGINT every 10 ms over the first 200 ms (``talkinghead.cli`` imports), then every 200 ms up to 1.6 s
    (torch and the other libraries import: a KeyboardInterrupt raised inside torch's import was
    swallowed, the command running on, or aborted the process).

    The first 10-40 ms (more on a busy machine) are Python's own start-up (site, runpy), before any
    code of the package runs: a signal there ends the process as Python decides (exit 1 or killed by
    the signal, its traceback showing only frozen importlib frames), so those runs may only show no
    frame of ours.
    """
    examples = Path(__file__).resolve().parents[1] / "examples"
    argv = [sys.executable, "-m", "talkinghead", "animate", "--max-frames", "2",
            "--source", str(examples / "portraits" / "sadtalker_happy.png"),
            "--driving", str(examples / "videos" / "liveportrait_d18.mp4"), "--output", str(tmp_path / "out.mp4")]
    handled = []
    for delay_ms in [*range(0, 200, 10), *range(200, 1700, 200)]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                                preexec_fn=ctrl_c_delivered)
        time.sleep(delay_ms / 1000)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 130:
            assert one_line(err).startswith("interrupted; "), (delay_ms, err)
            handled.append(delay_ms)
        else:  # Python's own start-up, never later: not finished (0), not aborted (-6)
            assert proc.returncode in (1, -signal.SIGINT) and "talkinghead" not in err, (delay_ms, proc.returncode, err)
    assert len(handled) >= 16 and handled[-8:] == list(range(200, 1700, 200)), handled
    assert list(tmp_path.iterdir()) == []


def test_a_second_ctrl_c_during_clean_up_does_not_break_it(monkeypatch, capsys):
    cleaned = []

    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the first Ctrl-C lands here
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # a second one while cleaning up
            time.sleep(0.05)
            cleaned.append(True)

    monkeypatch.setattr(cli_data, "cmd_inspect", command)
    assert cli.main(["inspect", "anything"]) == 130
    err = capsys.readouterr().err
    assert cleaned and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted; ")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_ctrl_c_a_library_turns_into_its_own_error_still_ends_as_an_interruption(monkeypatch, capsys):
    """numpy's C import machinery swallows a KeyboardInterrupt and cv2 then fails with an ImportError."""
    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # swallowed, as a C extension's start-up does
        raise ImportError("numpy._core.multiarray failed to import")

    monkeypatch.setattr(cli_data, "cmd_inspect", command)
    assert cli.main(["inspect", "anything"]) == 130
    assert one_line(capsys.readouterr().err).startswith("interrupted; ")
    monkeypatch.setattr(cli_data, "cmd_inspect", lambda args: {}["bug"])  # the next command starts afresh
    with pytest.raises(KeyError):
        cli.main(["inspect", "anything"])


@pytest.mark.parametrize("command", ["train", "evaluate", "prepare"])
def test_interrupt_messages_say_what_was_kept(command, monkeypatch, capsys):
    def ctrl_c(args):
        raise KeyboardInterrupt

    module = {"train": cli_training, "evaluate": cli_evaluate, "prepare": cli_data}[command]
    monkeypatch.setattr(module, f"cmd_{command}", ctrl_c)
    parser_args = {"train": ["train", "c.yaml", "--run-dir", "r"], "evaluate": ["evaluate", "c", "d", "--output", "o"],
                   "prepare": ["prepare", "v", "o"]}[command]
    try:
        code = cli.main(parser_args)
    except SystemExit as exit_:  # argparse refused the stand-in arguments: the test is wrong, not the CLI
        pytest.fail(f"bad test arguments {parser_args}: {exit_}")
    assert code == 130
    line = one_line(capsys.readouterr().err)
    assert line.startswith("interrupted; ") and ("kept" in line or "cached" in line)


@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/run/ckpt.pt"), "disk is full"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/report"), "read-only"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "permissions"),
    (RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                  "data/3: file write failed"), "disk is full"),
    (type("SafetensorError", (Exception,), {})(
        "Error while serializing: I/O error: No space left on device (os error 28)"), "disk is full"),
])
def test_disk_errors_at_the_boundary_are_one_line(error, words, monkeypatch, capsys):
    def command(args):
        try:
            raise error
        except Exception as err:
            raise RuntimeError("while saving") from err  # as deep inside a library

    monkeypatch.setattr(cli_data, "cmd_inspect", command)
    assert cli.main(["inspect", "anything"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: ") and words in line
    if isinstance(error, OSError):
        assert error.filename in line


def test_other_os_errors_stay_bugs_with_a_traceback(monkeypatch):
    def command(args):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/internal/table.json")

    monkeypatch.setattr(cli_data, "cmd_inspect", command)
    with pytest.raises(FileNotFoundError):
        cli.main(["inspect", "anything"])


def test_app_on_a_port_in_use_says_to_use_port(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["app", "--port", str(port)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"port {port}" in line and "--port" in line


def test_the_app_removes_temporary_folders_of_dead_owners(tmp_path):
    from talkinghead.app.server import TEMP_PREFIX, remove_dead_app_folders

    dead = tmp_path / f"{TEMP_PREFIX}4194000-abc"  # above any pid a test machine hands out
    (dead / "gradio").mkdir(parents=True)
    (dead / "gradio" / "upload.mp4").write_bytes(b"x")
    alive = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-def"
    alive.mkdir()
    unrelated = tmp_path / f"{TEMP_PREFIX}old-style"
    unrelated.mkdir()
    assert remove_dead_app_folders(tmp_path) == [dead]
    assert not dead.exists() and alive.is_dir() and unrelated.is_dir()
