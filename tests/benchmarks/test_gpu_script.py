"""The prepared GPU benchmark runs end to end in its --quick mode on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_script_quick_runs_on_cpu(tmp_path):
    output = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--quick", "--device", "cpu",
                           "--output", str(output)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(output.read_text())
    assert figures["device"] == "cpu" and figures["reference_ms"] > 0 and not figures["skipped"]
    seen = {(r["model"], r["variant"], r["batch"]) for r in figures["results"]}
    assert len(seen) == 2 * 2 * 2  # two tiny models x (fp32, bf16 channels_last) x batch 1 and 2
    assert all(r["ms_per_frame"] > 0 and r["x_reference"] > 0 for r in figures["results"])
    assert "x reference" in done.stdout
