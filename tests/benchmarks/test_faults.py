"""benchmarks/faults.py --quick: a Ctrl-C during animate and a full disk, judged on the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_quick_fault_battery_has_no_bad_case():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "faults.py"), "--quick", "--seed", "3"],
                            capture_output=True, text=True, env=env, timeout=600)
    lines = result.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("counts: "), result.stdout + result.stderr
    assert result.returncode == 0 and " bad 0" in lines[-1], result.stdout
    assert any(line.startswith("good    sigint animate") for line in lines), result.stdout


def _faults_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("faults", REPO / "benchmarks" / "faults.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["faults"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_late_disk_error_is_judged_by_its_last_line_and_what_it_left(tmp_path):
    """train / evaluate print progress before failing: only the final error line counts, and half-written files."""
    import torch

    faults = _faults_module()
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("kind: lsr\n")
    torch.save({"step": 2}, run_dir / "checkpoints" / "step-00000002.pt")
    progress = "layout_pretrain: 100%|##| 2/2\n[step 2] held-out: psnr 9.3\n"
    error = f"error: {run_dir}: No space left on device; the disk is full: free some space there"
    good = faults.judge_late_error("case", faults.Run(2, progress + error + "\n", 1.0), ("full", str(run_dir)), run_dir)
    assert good.grade == "good" and "config.yaml" in good.note
    assert faults.judge_late_error("case", faults.Run(2, error + "\n" + error + "\n", 1.0), ("full",),
                                   run_dir).grade == "poor"  # two error lines
    traceback = progress + "Traceback (most recent call last):\nOSError: [Errno 28] No space left on device\n"
    assert faults.judge_late_error("case", faults.Run(1, traceback, 1.0), ("full",), run_dir).grade == "bad"
    whole = (run_dir / "checkpoints" / "step-00000002.pt").read_bytes()
    (run_dir / "checkpoints" / "step-00000004.pt").write_bytes(whole[: len(whole) // 2])  # cut short by the disk
    bad = faults.judge_late_error("case", faults.Run(2, progress + error + "\n", 1.0), ("full",), run_dir)
    assert bad.grade == "bad" and "left behind: ['checkpoints/step-00000004.pt (" in bad.note
