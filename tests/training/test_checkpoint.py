"""Checkpoints: round trip, RNG restore, retention, the latest pointer, corruption, SIGKILL."""

from __future__ import annotations

import json
import os
import pathlib
import random
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from talkinghead.weights.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    check_weights_only,
    code_version,
    load_checkpoint,
    restore_rng_state,
)


def draw_numbers() -> tuple:
    return (random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()), torch.rand(4))


def test_round_trip_restores_state_and_rng(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    state = {
        "networks": {"net": net.state_dict()},
        "optimizers": {"net": optimizer.state_dict()},
        "stage": "full",
        "config": {"lr": 1e-3, "betas": (0.0, 0.999)},
        "rng": capture_rng_state(),
    }
    path = manager.save(state, 120)
    expected = draw_numbers()
    random.seed(99), np.random.seed(99), torch.manual_seed(99)

    loaded = manager.load(path)
    assert loaded["step"] == 120
    assert loaded["checkpoint_version"] == CHECKPOINT_VERSION
    assert loaded["code_version"] == code_version()
    assert loaded["stage"] == "full" and loaded["config"] == state["config"]
    for key, value in net.state_dict().items():
        assert torch.equal(loaded["networks"]["net"][key], value)
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(loaded["optimizers"]["net"])
    restore_rng_state(loaded["rng"])
    again = draw_numbers()
    assert again[:4] == expected[:4]
    assert torch.equal(again[4], expected[4])


def test_step_is_read_from_the_file_not_the_name(tmp_path):
    manager = CheckpointManager(tmp_path)
    path = manager.save({"x": torch.zeros(1)}, 7)
    renamed = path.with_name("step-00009999.pt")
    path.rename(renamed)
    assert load_checkpoint(renamed)["step"] == 7


def test_keep_last_n_and_keep_forever(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in range(1, 8):
        forever = step == 3
        manager.save({"x": torch.tensor(step)}, step, keep_forever=forever, name="stage-final" if forever else None)
    names = sorted(p.name for p in manager.checkpoints())
    assert names == ["step-00000003-stage-final.pt", "step-00000006.pt", "step-00000007.pt"]
    assert (manager.directory / "latest").read_text().strip() == "step-00000007.pt"
    assert manager.latest_path() == manager.directory / "step-00000007.pt"
    # A forever checkpoint saved last does not shrink the number of ordinary ones kept.
    manager.save({"x": torch.tensor(8)}, 8, keep_forever=True, name="end")
    names = sorted(p.name for p in manager.checkpoints())
    assert names == ["step-00000003-stage-final.pt", "step-00000006.pt", "step-00000007.pt", "step-00000008-end.pt"]
    assert manager.load_latest()["step"] == 8


def test_stray_temporary_files_are_cleaned(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.directory.mkdir(parents=True)
    stray = manager.directory / ".step-00000001.pt.abc123.tmp"
    stray.write_bytes(b"half a checkpoint")
    manager.save({"x": torch.zeros(1)}, 1)
    assert not stray.exists()


def test_empty_run_has_no_latest(tmp_path):
    manager = CheckpointManager(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert manager.latest_path() is None
        assert manager.load_latest() is None


def test_corrupt_latest_falls_back_with_a_warning(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    for step in (10, 20, 30):
        manager.save({"x": torch.full((4,), float(step))}, step)
    newest = manager.directory / "step-00000030.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(UserWarning, match="step-00000030.pt.*truncated.*falling back to .*step-00000020.pt"):
        state = manager.load_latest()
    assert state["step"] == 20 and torch.equal(state["x"], torch.full((4,), 20.0))
    # Said once: resolving the latest again (a resume does) finds the same and stays quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert manager.latest_path() == manager.directory / "step-00000020.pt"


def test_missing_or_dangling_pointer_falls_back(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    for step in (5, 6):
        manager.save({"x": torch.zeros(1)}, step)
    pointer = manager.directory / "latest"
    pointer.write_text("step-00000099.pt\n")
    with pytest.warns(UserWarning, match="does not exist"):
        assert manager.load_latest()["step"] == 6
    pointer.unlink()
    with pytest.warns(UserWarning, match="missing"):
        assert manager.load_latest()["step"] == 6


def test_truncated_file_names_it(tmp_path):
    path = CheckpointManager(tmp_path).save({"x": torch.randn(1000)}, 3)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=str(path.name)) as info:
        load_checkpoint(path)
    assert "earlier checkpoint" in str(info.value)


def test_non_checkpoint_files_are_refused(tmp_path):
    plain = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a talkinghead training checkpoint"):
        load_checkpoint(plain)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


class _RunsCode:
    """Pickles as a call to Path.touch: loading it with plain pickle would create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickled_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"step": 1, "checkpoint_version": 1, "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(path)
    assert not marker.exists()


class _Config:
    """Looks like a dataclass to check_weights_only."""

    __dataclass_fields__ = {}


def test_save_refuses_states_that_would_not_load(tmp_path):
    manager = CheckpointManager(tmp_path)
    with pytest.raises(TypeError, match=r"state\['rng'\]"):
        manager.save({"rng": np.random.get_state()}, 1)
    with pytest.raises(TypeError, match="dataclasses.asdict"):
        check_weights_only({"config": _Config()})
    assert not manager.directory.exists() or not list(manager.directory.glob("*.pt"))


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"step": 1, "checkpoint_version": CHECKPOINT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(path)


def test_unreadable_index_never_loses_checkpoints(tmp_path):
    manager = CheckpointManager(tmp_path, keep=1)
    manager.save({"x": torch.zeros(1)}, 1, keep_forever=True)
    (manager.directory / "index.json").write_text("{broken")
    with pytest.warns(UserWarning, match="index.json"):
        manager.save({"x": torch.zeros(1)}, 2)
    manager.save({"x": torch.zeros(1)}, 3)
    names = [p.name for p in manager.checkpoints()]
    assert "step-00000001.pt" in names and "step-00000003.pt" in names and "step-00000002.pt" not in names
    assert json.loads((manager.directory / "index.json").read_text())["checkpoints"][-1]["file"] == "step-00000003.pt"


# Saves ~1 MB checkpoints in a tight loop in forked children; each child is SIGKILLed after a
# delay chosen by the test. Forking avoids paying torch's import time for every kill.
_HARNESS = textwrap.dedent(
    """
    import os, signal, sys, time
    import torch
    torch.set_num_threads(1)
    from talkinghead.weights.checkpoint import CheckpointManager
    run_dir = sys.argv[1]
    print("ready", flush=True)
    for line in sys.stdin:
        delay = float(line)
        pid = os.fork()
        if pid == 0:
            manager = CheckpointManager(run_dir, keep=2)
            latest = manager.load_latest()
            step = 0 if latest is None else latest["step"]
            while True:
                step += 1
                payload = {"payload": torch.full((262144,), float(step)), "parity": step % 2}
                manager.save(payload, step, keep_forever=step % 7 == 0)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("killed", flush=True)
    """
)


def test_sigkill_during_saves_leaves_a_complete_latest(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    process = subprocess.Popen(
        [sys.executable, "-c", _HARNESS, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        manager = CheckpointManager(tmp_path, keep=2)
        previous = 0
        for kill in range(4):
            delay = rng.uniform(0.2, 0.6)
            process.stdin.write(f"{delay}\n")
            process.stdin.flush()
            assert process.stdout.readline().strip() == "killed"
            where = f"kill {kill} after {delay:.3f}s (seed {seed})"
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the pointer must always name a complete file
                state = manager.load_latest()
            assert state is not None, where
            step = state["step"]
            assert step >= previous, where  # a resumed child never goes back
            assert torch.equal(state["payload"], torch.full((262144,), float(step))), where
            assert state["parity"] == step % 2, where
            names = {p.name for p in manager.checkpoints()}
            for forever in range(7, step, 7):
                assert f"step-{forever:08d}.pt" in names, where
            ordinary = [n for n in names if int(n[5:13]) % 7]
            assert len(ordinary) <= manager.keep + 1, where  # one more if killed before pruning
            previous = step
        assert previous >= 4, f"the children barely saved anything (seed {seed})"
    finally:
        process.kill()
        process.wait()
