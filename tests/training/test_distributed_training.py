"""Two processes under torchrun (gloo, CPU) train LSR and stay bit-identical."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO, tiny_args

from talkinghead.weights.checkpoint import CheckpointManager


def test_two_gloo_processes_keep_identical_weights(real_train_data, tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "talkinghead", *tiny_args(real_train_data, "trainer.device=cpu", "--run-dir", str(run)),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run / "train.log").read_text()
    # The trainer compares every network's weights across ranks at the end of each stage.
    assert "ranks in sync after layout_pretrain: 2 processes hold identical weights" in log
    assert "ranks in sync after full: 2 processes hold identical weights" in log
    state = CheckpointManager(run).load_latest()
    assert state["global_step"] == 7 and state["stage_complete"]
    # Only rank 0 writes: one metrics file, one set of checkpoints.
    assert len(list(run.rglob("metrics.jsonl"))) == 1
