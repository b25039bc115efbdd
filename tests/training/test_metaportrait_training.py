"""MetaPortrait training end to end on real frames: both stages, every loss term, bit-identical resume, fine-tuning."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, REPO, assert_same_release
from safetensors.torch import load_file

from talkinghead.cli import main
from talkinghead.weights.checkpoint import CheckpointManager


CONFIG = REPO / "configs" / "metaportrait" / "tiny.yaml"
NETWORKS = ("motion_encoder", "flow_network", "refinement_network", "discriminator")


def mp_args(data: Path, *extra: str) -> list[str]:
    """``train`` arguments for a 2 + 2 step run of the tiny preset."""
    return [
        "train", str(CONFIG), f"data.root={data}", "data.num_workers=0", "data.holdout_fraction=0.25",
        "data.num_eval_clips=2", "stages.0.steps=2", "stages.1.steps=2", "trainer.checkpoint_every=1",
        "trainer.log_every=1", "trainer.image_every=2", "trainer.eval_every=2", *extra,
    ]


@pytest.fixture(scope="module")
def trained_run(real_train_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("mp_run") / "run"
    assert main(mp_args(real_train_data, "--run-dir", str(run))) == 0
    return run


def test_both_stages_train_every_term_of_eq4(trained_run):
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    keys = {k for r in records for k in r}
    for term in ("warp_perceptual", "perceptual", "identity", "eye", "mouth", "gan", "feature_matching"):
        assert f"full/loss/G/{term}" in keys, term
    assert "warp_pretrain/loss/G/warp_perceptual" in keys and "full/loss/D/d_lsgan" in keys
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    release = trained_run / "release"
    assert json.loads((release / "config.json").read_text())["method"] == "metaportrait"
    state = CheckpointManager(trained_run).load_latest()
    assert state["stage"] == "full" and state["stage_complete"] and state["global_step"] == 4


def test_an_interrupted_run_resumes_to_the_identical_result(trained_run, real_train_data, tmp_path):
    run = tmp_path / "run"
    assert main(mp_args(real_train_data, "--run-dir", str(run), "--max-steps", "3")) == 0  # inside the full stage
    assert CheckpointManager(run).load_latest()["global_step"] == 3
    assert main(mp_args(real_train_data, "--run-dir", str(run), "--resume")) == 0
    assert_same_release(trained_run / "release", run / "release", NETWORKS)


def test_finetune_personalises_the_model_on_real_photos(trained_run, tmp_path, capsys):
    out = tmp_path / "tuned"
    portrait = EXAMPLES / "portraits" / "sadtalker_happy.png"
    video = EXAMPLES / "videos" / "liveportrait_d18.mp4"
    assert main(["finetune", "--checkpoint", str(trained_run), "--images", str(portrait), str(video),
                 "--output", str(out), "--frames-per-video", "2", "--set", "steps=2", "batch_size=2", "device=cpu"]) == 0
    assert "reconstruction of the subject images" in capsys.readouterr().out
    subject = load_file(out / "subject.safetensors")
    assert set(subject) == {"source_image", "source_landmarks", "source_features", "z_id"}
    assert torch.allclose(subject["z_id"].norm(dim=-1), torch.ones(1), atol=1e-4)


def test_a_finished_stage_trains_longer_when_resumed_with_more_steps(trained_run, real_train_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(mp_args(real_train_data, "stages.1.steps=4", "--run-dir", str(run), "--resume")) == 0
    state = CheckpointManager(run).load_latest()
    assert state["stage"] == "full" and state["stage_complete"] and state["stage_step"] == 4
    assert state["global_step"] == 6
    assert main(mp_args(real_train_data, "stages.1.steps=4", "--run-dir", str(run), "--resume")) == 0
    assert CheckpointManager(run).load_latest()["global_step"] == 6  # nothing left to do
