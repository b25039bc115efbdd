"""Two processes under torchrun (gloo, CPU) train LSR and stay bit-identical."""

from __future__ import annotations

import os
import subprocess
import sys

from pathlib import Path

import torch
from conftest import REPO, tiny_args
from dump_rank_weights import DUMP_ENV
from safetensors.torch import load_file

from talkinghead.weights.checkpoint import CheckpointManager


NETWORKS = ("layout_encoder", "style_encoder", "layout_generator", "image_generator", "discriminator")


def test_two_gloo_processes_keep_identical_weights(real_train_data, tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "dump_rank_weights", *tiny_args(real_train_data, "trainer.device=cpu", "--run-dir", str(run)),
    ]
    dump = tmp_path / "weights"
    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{REPO / 'src'}", "OMP_NUM_THREADS": "1",
           DUMP_ENV: str(dump)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # Each rank writes its own final weights (outside the trainer), compared here tensor by tensor
    # instead of trusting the trainer's report about itself.
    weights = [load_file(dump / f"rank{rank}.safetensors") for rank in range(2)]
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 10
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
    # and they are the weights the run released (rank 0's)
    released = {f"{n}.{k}": v for n in NETWORKS for k, v in load_file(run / "release" / f"{n}.safetensors").items()}
    assert set(released) <= set(weights[0])
    for name, tensor in released.items():
        assert torch.equal(tensor, weights[0][name]), name
    state = CheckpointManager(run).load_latest()
    assert state["global_step"] == 7 and state["stage_complete"]
    # Only rank 0 writes: one metrics file, one set of checkpoints.
    assert len(list(run.rglob("metrics.jsonl"))) == 1
