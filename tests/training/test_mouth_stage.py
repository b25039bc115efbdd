"""MetaPortrait's mouth stage on real frames: it trains every term, resumes bit-identically, ships, and paints at animation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, REPO, assert_same_release
from safetensors.torch import load_file

from talkinghead.cli import main
from talkinghead.config import ConfigError, load_config
from talkinghead.data.video import read_video_frames
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline

CONFIG = REPO / "configs" / "metaportrait" / "tiny_mouth.yaml"
PORTRAIT = next(iter(sorted((EXAMPLES / "portraits").glob("*.*"))))
MOUTH_NETWORKS = ("mouth_generator", "mouth_discriminator")


def mouth_args(data: Path, *extra: str) -> list[str]:
    """``train`` arguments for a 4-step mouth stage of the tiny preset."""
    return [
        "train", str(CONFIG), f"data.root={data}", "data.num_workers=0", "data.holdout_fraction=0.25",
        "data.num_eval_clips=2", "stages.0.steps=4", "trainer.checkpoint_every=1", "trainer.log_every=1",
        "trainer.image_every=2", "trainer.eval_every=2", *extra,
    ]


@pytest.fixture(scope="module")
def mouth_run(real_train_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("mouth_run") / "run"
    assert main(mouth_args(real_train_data, "--run-dir", str(run))) == 0
    return run


def test_the_mouth_stage_trains_its_terms_and_only_the_mouth_networks(mouth_run):
    records = [json.loads(line) for line in (mouth_run / "metrics.jsonl").read_text().splitlines()]
    keys = {k for r in records for k in r}
    for term in ("mouth", "perceptual", "gan", "feature_matching"):
        assert f"mouth/loss/G/{term}" in keys, term
    assert "mouth/loss/D/d_lsgan" in keys
    assert any(k.startswith("mouth/holdout/l1_opening") or k.endswith("l1_opening") for k in keys), sorted(keys)
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    release = mouth_run / "release"
    info = json.loads((release / "config.json").read_text())
    assert info["model"]["mouth"]["enabled"] is True
    assert (release / "mouth_generator.safetensors").is_file()
    # the bank holds open mouths of the training clips, each with its contour and person
    weights = load_file(release / "mouth_generator.safetensors")
    filled = weights["bank_identities"] >= 0
    assert filled.sum() > 0 and weights["bank_images"][filled].float().std() > 5
    assert (weights["bank_rings"][filled].amax(dim=(1, 2)) > 0).all()
    assert list((mouth_run / "samples").glob("*.png")), "no sample grid of the mouth crops"


def test_an_interrupted_mouth_stage_resumes_to_the_identical_result(mouth_run, real_train_data, tmp_path):
    run = tmp_path / "run"
    assert main(mouth_args(real_train_data, "--run-dir", str(run), "--max-steps", "2")) == 0
    assert main(mouth_args(real_train_data, "--run-dir", str(run), "--resume")) == 0
    assert_same_release(mouth_run / "release", run / "release", MOUTH_NETWORKS)


def test_the_face_networks_do_not_move_in_the_mouth_stage(mouth_run, real_train_data, tmp_path):
    run = tmp_path / "other"
    assert main(mouth_args(real_train_data, "stages.0.steps=1", "--run-dir", str(run))) == 0
    for name in ("motion_encoder", "flow_network", "refinement_network"):
        a, b = load_file(mouth_run / "release" / f"{name}.safetensors"), load_file(run / "release" / f"{name}.safetensors")
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a), name


def test_a_mouth_stage_needs_the_generator_enabled():
    with pytest.raises(ConfigError, match="model.mouth.enabled"):
        load_config(CONFIG, ["model.mouth.enabled=false"])


def test_animation_paints_only_around_the_mouth(mouth_run):
    frames = [rgb for _, _, rgb in read_video_frames(EXAMPLES / "videos" / "liveportrait_d18.mp4", range(6))]
    pipeline = AnimationPipeline.from_pretrained(mouth_run / "release", device="cpu")
    assert pipeline.mouth is not None
    pipeline.set_source([PORTRAIT])
    pipeline.set_output_size(128)
    painted = [f.image for f in pipeline.animate(frames, AnimateOptions(batch_size=3))]
    plain = [f.image for f in pipeline.animate(frames, AnimateOptions(batch_size=3, mouth=False))]
    differs = [np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0 for a, b in zip(painted, plain)]
    assert any(d.any() for d in differs), "the mouth generator changed nothing"
    for d in differs:
        ys, xs = np.nonzero(d)
        if len(ys):  # the changes lie in the lower middle of the face crop
            assert ys.min() > 128 * 0.45 and xs.min() > 128 * 0.2 and xs.max() < 128 * 0.8


def test_fine_tuning_a_model_with_a_mouth_keeps_its_mouth(mouth_run, tmp_path):
    out = tmp_path / "tuned"
    video = EXAMPLES / "videos" / "liveportrait_d18.mp4"
    assert main(["finetune", "--checkpoint", str(mouth_run / "release"), "--images", str(PORTRAIT), str(video),
                 "--output", str(out), "--frames-per-video", "2", "--set", "steps=2", "batch_size=2", "device=cpu"]) == 0
    tuned = load_file(out / "mouth_generator.safetensors")
    shipped = load_file(mouth_run / "release" / "mouth_generator.safetensors")
    assert all(np.array_equal(tuned[k].numpy(), shipped[k].numpy()) for k in shipped)  # the bank included
    pipeline = AnimationPipeline.from_pretrained(out, device="cpu")
    assert pipeline.mouth is not None and pipeline.subject_state is not None
