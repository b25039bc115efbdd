"""Fixtures of the training tests: a tiny real dataset prepared once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from talkinghead.config import PrepareConfig
from talkinghead.data.prepare import RunOptions, prepare_dataset

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TINY_CONFIG = REPO / "configs" / "lsr" / "tiny.yaml"


@pytest.fixture(scope="session")
def real_train_data(tmp_path_factory) -> Path:
    """64 px, 8 frames per clip, landmark segmentation, from the three bundled real videos."""
    out = tmp_path_factory.mktemp("lsr_data") / "dataset"
    config = PrepareConfig(size=64, frames_per_clip=8, segmentation="landmarks")
    summary = prepare_dataset(EXAMPLES / "videos", out, config, RunOptions(progress=False))
    assert summary.clips_done == 3, summary.format()
    return out


@pytest.fixture(scope="session")
def real_data_without_segmentation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lsr_data") / "no_segmentation"
    config = PrepareConfig(size=64, frames_per_clip=4, segmentation="none")
    summary = prepare_dataset(EXAMPLES / "videos" / "liveportrait_d18.mp4", out, config, RunOptions(progress=False))
    assert summary.clips_done == 1, summary.format()
    return out


def tiny_args(data: Path, *extra: str) -> list[str]:
    """``train`` arguments for a few-step run of the tiny preset."""
    return [
        "train",
        str(TINY_CONFIG),
        f"data.root={data}",
        "data.num_workers=0",
        "data.holdout_fraction=0.25",
        "stages.0.steps=3",
        "stages.0.k=2",
        "stages.0.batch_size=2",
        "stages.0.warmup_steps=1",
        "stages.1.steps=4",
        "stages.1.k=2",
        "stages.1.batch_size=2",
        "stages.1.r1_every=2",
        "stages.1.warmup_steps=1",
        "trainer.checkpoint_every=2",
        "trainer.log_every=1",
        "trainer.image_every=2",
        "trainer.eval_every=2",
        *extra,
    ]


def assert_same_release(a: Path, b: Path, networks) -> None:
    """Every tensor of every network in release folders ``a`` and ``b`` is bit-identical."""
    for name in networks:
        ta, tb = load_file(a / f"{name}.safetensors"), load_file(b / f"{name}.safetensors")
        assert ta.keys() == tb.keys(), name
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{name}.{key} differs"
