"""FSTH training end to end on real frames: every term of Eq. 3-6, W per video, FF variant, fine-tuning (§3.3)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, REPO
from safetensors.torch import load_file

from talkinghead.cli import main
from talkinghead.data.episodes import EpisodeDataset
from talkinghead.models import load_pretrained
from talkinghead.models.fsth import build_networks
from talkinghead.training.fsth_finetune import subject_initialisation
from talkinghead.weights.checkpoint import CheckpointManager

CONFIG = REPO / "configs" / "fsth" / "tiny.yaml"
PORTRAIT = EXAMPLES / "portraits" / "sadtalker_happy.png"
VIDEO = EXAMPLES / "videos" / "liveportrait_d18.mp4"


def fsth_args(data: Path, config: Path = CONFIG, *extra: str) -> list[str]:
    """``train`` arguments for a 3-step run of a tiny preset (K = 2, batch 2)."""
    return [
        "train", str(config), f"data.root={data}", "data.num_workers=0", "data.holdout_fraction=0.25",
        "data.num_eval_clips=2", "stages.0.steps=3", "stages.0.k=2", "stages.0.batch_size=2",
        "trainer.log_every=1", "trainer.image_every=3", "trainer.eval_every=3", "trainer.checkpoint_every=3", *extra,
    ]


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained_run(real_train_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fsth_run") / "run"
    assert main(fsth_args(real_train_data, CONFIG, "--run-dir", str(run))) == 0
    return run


def test_meta_learning_trains_every_term_with_two_d_updates(trained_run):
    keys = {k for r in records(trained_run) for k in r}
    for term in ("content_fallback", "gan", "feature_matching", "match"):
        assert f"meta/loss/G/{term}" in keys, term
    for phase in ("D", "D2"):  # two discriminator updates per generator update (§3.4)
        assert f"meta/loss/{phase}/d_hinge" in keys and f"meta/loss/{phase}/d_match" in keys
    assert all(math.isfinite(v) for r in records(trained_run) for v in r.values() if isinstance(v, float))
    state = CheckpointManager(trained_run).load_latest()
    assert state["stage"] == "meta" and state["stage_complete"] and state["global_step"] == 3
    assert json.loads((trained_run / "release" / "config.json").read_text())["method"] == "fsth"


def test_optimisers_use_the_papers_learning_rate_ratio(trained_run):
    state = CheckpointManager(trained_run).load_latest()
    g, d = (state["optimizers"][n]["param_groups"][0] for n in ("generator", "discriminator"))
    assert g["lr"] == pytest.approx(2e-4) and d["lr"] == pytest.approx(4 * 2e-4)  # tiny: 4x the paper's 5e-5 / 2e-4
    assert tuple(g["betas"]) == (0.0, 0.9)


def test_only_the_columns_of_the_videos_trained_on_move(trained_run, real_train_data):
    state = CheckpointManager(trained_run).load_latest()
    config = load_pretrained(trained_run).config
    torch.manual_seed(0)  # the run's initial weights
    initial = build_networks(config)["discriminator"].video_embeddings.detach()
    trained = state["networks"]["discriminator"]["video_embeddings"]
    num_clips = len(EpisodeDataset(real_train_data, split="train", k=2, size=64, holdout_fraction=0.25, landmark_style="fsth"))
    moved = (trained - initial).abs().sum(dim=1) > 0
    assert moved[:num_clips].any() and not moved[num_clips:].any()


def test_ff_variant_trains_without_the_match_term(real_train_data, tmp_path):
    run = tmp_path / "ff"
    assert main(fsth_args(real_train_data, REPO / "configs" / "fsth" / "tiny_ff.yaml", "stages.0.steps=1",
                          "--run-dir", str(run))) == 0
    keys = {k for r in records(run) for k in r}
    assert "meta/loss/G/gan" in keys and not any(k.endswith("match") for k in keys)


def test_too_few_columns_of_w_stop_the_run_before_training(real_train_data, tmp_path, capsys):
    run = tmp_path / "small_w"
    assert main(fsth_args(real_train_data, CONFIG, "model.discriminator.num_videos=1", "--run-dir", str(run))) != 0
    assert "model.discriminator.num_videos" in capsys.readouterr().err


def test_subject_initialisation_is_p_e_and_w0_plus_e(trained_run):
    pretrained = load_pretrained(trained_run)
    nets = pretrained.build(["embedder", "generator", "discriminator"])
    for net in nets.values():
        net.eval()
    torch.manual_seed(3)
    images, landmarks = torch.rand(5, 3, 64, 64) * 2 - 1, torch.rand(5, 3, 64, 64) * 2 - 1
    e_new, psi, w = subject_initialisation(nets["embedder"], nets["generator"], nets["discriminator"], images, landmarks)
    with torch.no_grad():
        e_by_hand = torch.stack([nets["embedder"](torch.cat([images[t:t + 1], landmarks[t:t + 1]], 1))[0]
                                 for t in range(5)]).mean(0)  # Eq. 7
        projection = nets["generator"].projection
        p = projection.weight  # the spectrally normalised P
        assert torch.allclose(e_new, e_by_hand, atol=1e-4)
        assert torch.allclose(psi, p @ e_new, atol=1e-4)  # psi' = P e_NEW
        assert torch.allclose(w, nets["discriminator"].w0 + e_new)  # w' = w0 + e_NEW


def test_finetune_starts_from_p_e_and_tunes_psi_prime(trained_run, tmp_path, capsys):
    frozen, tuned = tmp_path / "lr0", tmp_path / "tuned"
    common = ["finetune", "--checkpoint", str(trained_run), "--images", str(PORTRAIT), str(VIDEO),
              "--frames-per-video", "2"]
    assert main([*common, "--output", str(frozen), "--set", "steps=1", "batch_size=2", "device=cpu", "lr=0"]) == 0
    assert main([*common, "--output", str(tuned), "--set", "steps=2", "batch_size=2", "device=cpu", "lr=0.001"]) == 0
    assert "reconstruction of the subject images" in capsys.readouterr().out
    start, after = load_file(frozen / "subject.safetensors"), load_file(tuned / "subject.safetensors")
    assert set(start) == {"embedding", "adain"}
    generator = load_pretrained(trained_run).build(["generator"])["generator"].eval()
    with torch.no_grad():  # with lr = 0 psi' keeps its initial value P e_NEW
        assert torch.allclose(start["adain"], generator.project(start["embedding"]), atol=1e-5)
    assert torch.equal(start["embedding"], after["embedding"])  # E is not tuned
    assert not torch.allclose(start["adain"], after["adain"])  # psi' is a free parameter
