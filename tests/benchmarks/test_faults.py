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
