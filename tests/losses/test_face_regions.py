"""Eye and mouth masks from the landmarks of a real prepared frame (MetaPortrait's L_eye, L_mouth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from talkinghead.config import PrepareConfig
from talkinghead.config.metaportrait import ID_CHIP_POINTS
from talkinghead.data.dataset_format import PreparedDataset
from talkinghead.data.prepare import RunOptions, prepare_dataset
from talkinghead.losses.face_regions import LEFT_EYE, MOUTH, RIGHT_EYE, eye_mask, masked_l1, mouth_mask

VIDEO = Path(__file__).resolve().parents[2] / "examples" / "videos" / "liveportrait_d18.mp4"
SIZE = 64


@pytest.fixture(scope="module")
def real_points(tmp_path_factory) -> torch.Tensor:
    """(n, 68, 2) iBUG points of real prepared 64 px frames (pixels)."""
    out = tmp_path_factory.mktemp("regions") / "dataset"
    summary = prepare_dataset(VIDEO, out, PrepareConfig(size=SIZE, frames_per_clip=4, segmentation="none"),
                              RunOptions(progress=False))
    assert summary.clips_done == 1, summary.format()
    dataset = PreparedDataset(out)
    clip = dataset.clip(dataset.records[0])
    return torch.from_numpy(np.asarray(clip.landmarks68[:, :, :2], np.float32))


def _inside(mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(n, p) whether each point's pixel is inside its frame's (n, 1, s, s) mask."""
    xy = points.round().long().clamp(0, SIZE - 1)
    rows = torch.arange(len(points))[:, None]
    return mask[rows, 0, xy[..., 1], xy[..., 0]] > 0


def test_masks_cover_their_landmarks_and_not_the_others(real_points):
    eyes, mouth = eye_mask(real_points, SIZE), mouth_mask(real_points, SIZE)
    assert _inside(eyes, real_points[:, list(LEFT_EYE + RIGHT_EYE)]).all()
    assert _inside(mouth, real_points[:, list(MOUTH)]).all()
    assert not _inside(eyes, real_points[:, list(MOUTH)]).any()
    assert not _inside(mouth, real_points[:, list(LEFT_EYE + RIGHT_EYE)]).any()
    # a region, not the whole face: each mask is a small part of the frame
    assert 0.01 < float(eyes.mean()) < 0.2 and 0.01 < float(mouth.mean()) < 0.2


def test_masked_l1_sees_only_the_region(real_points):
    target = torch.zeros(len(real_points), 3, SIZE, SIZE)
    mouth = mouth_mask(real_points, SIZE)
    outside = target + (1 - mouth)  # wrong everywhere except the mouth
    assert float(masked_l1(outside, target, mouth)) == 0.0
    assert float(masked_l1(target + mouth, target, mouth)) == pytest.approx(1.0)


def test_identity_chip_points_match_real_crops(real_points):
    # config.metaportrait.ID_CHIP_POINTS: where dlib's five points sit in a prepared head crop
    five = real_points[:, [45, 42, 36, 39, 33]]
    measured = ((five + 0.5) / SIZE).mean(dim=0)
    assert torch.allclose(measured, torch.tensor(ID_CHIP_POINTS), atol=0.06), measured
