"""LSR training end to end on real frames: both stages, logs, resume, fine-tuning, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, REPO, assert_same_release, tiny_args
from safetensors.torch import load_file

from talkinghead.cli import main
from talkinghead.weights.checkpoint import CheckpointManager

NETWORKS = ("layout_encoder", "style_encoder", "layout_generator", "image_generator", "discriminator")


def _release_tensors(release: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {name: load_file(release / f"{name}.safetensors") for name in NETWORKS}


def _assert_identical(a: Path, b: Path) -> None:
    assert_same_release(a, b, NETWORKS)


@pytest.fixture(scope="module")
def trained_run(real_train_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("lsr_run") / "run"
    assert main(tiny_args(real_train_data, "--run-dir", str(run))) == 0
    return run


def test_both_stages_train_with_finite_losses_and_write_everything(trained_run):
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    keys = {k for r in records for k in r}
    for key in (
        "layout_pretrain/loss/G_layout/segmentation",
        "full/loss/G/l1",
        "full/loss/G/gan",
        "full/loss/G/latent_l2",
        "full/loss/D/d_logistic",
        "full/loss/D_reg/r1",
        "full/grad_norm/G",
        "full/lr",
        "full/time/images_per_s",
        "full/eval/psnr",
        "layout_pretrain/eval/segmentation_accuracy",
    ):
        assert key in keys, key
    for record in records:
        for key, value in record.items():
            if isinstance(value, float):
                assert math.isfinite(value), (key, value)
    assert list((trained_run / "samples").glob("full_samples-*.png"))
    assert list((trained_run / "samples").glob("layout_pretrain_samples-*.png"))
    assert list((trained_run / "tensorboard").iterdir())
    assert (trained_run / "config.yaml").is_file()
    release = trained_run / "release"
    assert json.loads((release / "config.json").read_text())["method"] == "lsr"
    assert set(_release_tensors(release)) == set(NETWORKS)
    # Step checkpoints are pruned to keep_checkpoints; the stage-final ones stay.
    names = [p.name for p in CheckpointManager(trained_run).checkpoints()]
    assert any("layout_pretrain-final" in n for n in names) and any("full-final" in n for n in names)
    state = CheckpointManager(trained_run).load_latest()
    assert state["stage"] == "full" and state["stage_complete"] and state["global_step"] == 7
    assert set(state["optimizers"]) == {"generator", "discriminator"}


def test_an_interrupted_run_resumes_to_the_identical_result(trained_run, real_train_data, tmp_path, monkeypatch):
    from talkinghead.training.trainer import Trainer

    run = tmp_path / "run"
    # Stops inside the full stage (global step 5 of 7); the checkpoint is written on the way out.
    assert main(tiny_args(real_train_data, "--run-dir", str(run), "--max-steps", "5")) == 0
    saved = CheckpointManager(run).load_latest()
    assert saved["global_step"] == 5

    # Training is seeded, so a --resume that silently restarted from step 0 would also end
    # identical: record where the resumed run really starts and what optimiser state it holds.
    starts = []
    run_stage = Trainer.run_stage

    def spy(self, plan, resume=None):
        first_step = self.steps_this_run
        result = run_stage(self, plan, resume)
        adam_steps = {name: max(float(s["step"]) for s in opt.state.values())
                      for name, opt in plan.optimizers.items()}
        starts.append((plan.name, resume and resume["stage_step"], self.steps_this_run - first_step, adam_steps))
        return result

    monkeypatch.setattr(Trainer, "run_stage", spy)
    assert main(tiny_args(real_train_data, "--run-dir", str(run), "--resume")) == 0
    # only the full stage runs, from the checkpoint's step: 2 more steps, not 7
    ((stage, from_step, steps_run, adam_steps),) = starts
    assert (stage, from_step, steps_run) == ("full", saved["stage_step"], 2)
    # the optimisers continue the saved state: Adam's step counters count the steps before the interruption too
    for name, saved_opt in saved["optimizers"].items():
        before = max(float(s["step"]) for s in saved_opt["state"].values())
        assert before > 0 and adam_steps[name] > before, (name, before, adam_steps[name])
    _assert_identical(trained_run / "release", run / "release")


def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(trained_run, real_train_data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "talkinghead", *tiny_args(real_train_data, "--run-dir", str(run))]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoints" / "latest").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = CheckpointManager(run).load_latest()
    assert state is not None and state["global_step"] >= 2
    assert main(tiny_args(real_train_data, "--run-dir", str(run), "--resume")) == 0
    _assert_identical(trained_run / "release", run / "release")


def test_finetune_personalises_the_model_on_real_photos(trained_run, tmp_path, capsys):
    out = tmp_path / "subject"
    portrait = EXAMPLES / "portraits" / "sadtalker_happy.png"
    args = ["finetune", "--checkpoint", str(trained_run / "release"), "--images", str(portrait),
            "--output", str(out), "--set", "steps=3", "batch_size=2", "r1_every=2", "device=cpu", "perceptual=auto"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "s/step" in printed and "PSNR" in printed
    info = json.loads((out / "config.json").read_text())
    assert info["finetune"]["steps"] == 3 and info["subject_sources"] == ["sadtalker_happy.png"]
    assert math.isfinite(info["reconstruction_after"]["psnr"])
    latents = load_file(out / "subject.safetensors")
    assert latents["z_layout"].shape == (1, 128) and latents["z_style"].shape == (1, 128)
    tuned, base = load_file(out / "image_generator.safetensors"), load_file(trained_run / "release" / "image_generator.safetensors")
    assert any(not torch.equal(tuned[k], base[k]) for k in base)
    frozen, base_e = load_file(out / "layout_encoder.safetensors"), load_file(trained_run / "release" / "layout_encoder.safetensors")
    assert all(torch.equal(frozen[k], base_e[k]) for k in base_e)  # encoders are not tuned (§3.5)
    assert main(args) == 2  # the output exists: refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_export_release_from_a_checkpoint(trained_run, tmp_path):
    out = tmp_path / "exported"
    assert main(["export", "release", "--checkpoint", str(trained_run), "--output", str(out)]) == 0
    _assert_identical(trained_run / "release", out)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["stages.0.k=9"], "fewer than k \\+ 1 = 10 frames"),
        (["stages.1.batch_size=3", "trainer.grad_accumulation=2"], "does not split"),
        (["data.root=/nonexistent/dataset"], "no such folder"),
    ],
)
def test_bad_setups_fail_before_any_compute(real_train_data, tmp_path, capsys, extra, message):
    run = tmp_path / "run"
    assert main(tiny_args(real_train_data, *extra, "--run-dir", str(run))) == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)
    assert not (run / "checkpoints").exists()


def test_layout_pretraining_needs_segmentation_maps(real_data_without_segmentation, tmp_path, capsys):
    assert main(tiny_args(real_data_without_segmentation, "stages.0.k=1", "stages.1.k=1",
                          "--run-dir", str(tmp_path / "run"))) == 2
    assert "no segmentation maps" in capsys.readouterr().err


def test_resume_refuses_another_architecture_and_existing_runs_need_resume(trained_run, real_train_data, capsys):
    assert main(tiny_args(real_train_data, "--run-dir", str(trained_run))) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(tiny_args(real_train_data, "model.latent_dim=64", "--run-dir", str(trained_run), "--resume")) == 2
    err = capsys.readouterr().err
    assert "another architecture" in err and "model.latent_dim: checkpoint 128, config 64" in err


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(trained_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    manager = CheckpointManager(run)
    latest = manager.latest_path()
    latest.write_bytes(latest.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="falling back"):
        state = manager.load_latest()
    assert state is not None and state["global_step"] < 7
