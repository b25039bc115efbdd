"""E_warp on real clips: zero for a still video, larger with flicker, flow from the reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkinghead.data.video import read_video_frames
from talkinghead.evaluation.metrics.base import METRICS, build_metric
from talkinghead.evaluation.metrics.warp_error import WarpError, visible_mask, warp_by_flow, warping_error

SIZE = 256  # frames are downscaled so that the Farneback flows stay fast on 2 CPU cores


def read_clip(path, num_frames: int) -> np.ndarray:
    """(t, SIZE, SIZE, 3) uint8: the first frames of a video, downscaled."""
    frames = [rgb for _, _, rgb in read_video_frames(path, range(num_frames))]
    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])


@pytest.fixture(scope="module")
def talking(real_data) -> np.ndarray:
    """A woman talking (sadtalker_WDA_KatieHill_000): head and mouth move in every frame."""
    return read_clip(real_data / "sadtalker_WDA_KatieHill_000.mp4", 6)


def flicker(frames: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    """Every other frame gets independent noise, the frame-to-frame flicker E_warp should catch."""
    noisy = frames.astype(np.float64)
    noisy[1::2] += np.random.default_rng(0).normal(0.0, sigma, noisy[1::2].shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def test_warp_error_is_registered():
    spec = METRICS["warp_error"]
    assert spec.kind == "video" and not spec.higher_is_better
    assert isinstance(build_metric("warp_error", levels=4), WarpError)


def test_a_still_video_has_no_warping_error(talking):
    values = WarpError()(np.repeat(talking[:1], 4, axis=0))
    assert values.shape == (3,) and values.dtype == np.float64
    assert np.all(values < 1e-6)  # Farneback leaves a tiny flow on identical frames (up to ~1 px at the border)


def test_a_real_clip_has_a_small_positive_warping_error(talking):
    values = WarpError()(talking)
    assert values.shape == (len(talking) - 1,)
    assert np.all(values > 1e-5)
    # Well below the error of comparing consecutive frames without motion compensation.
    unaligned = ((talking[1:].astype(np.float64) - talking[:-1]) / 255.0) ** 2
    assert values.mean() < 0.5 * unaligned.mean()


def test_flicker_raises_the_warping_error(talking):
    metric = WarpError()
    clean = metric(talking)
    noisy = metric(flicker(talking))
    assert np.all(noisy > clean)
    assert noisy.mean() > 2 * clean.mean()
    # The noise alone costs about sigma^2 = (8 / 255)^2 ~ 1e-3 per pair.
    assert noisy.mean() - clean.mean() == pytest.approx((8 / 255) ** 2, rel=0.5)


def test_the_flow_comes_from_the_reference_when_given(talking):
    metric = WarpError()
    np.testing.assert_array_equal(metric(talking, reference=talking), metric(talking))
    # A frozen output judged against the moving ground truth is warped by the real motion,
    # so it no longer matches itself: the frozen clip is not rewarded for being still.
    frozen = np.repeat(talking[:1], len(talking), axis=0)
    assert np.all(metric(frozen, reference=talking) > 10 * metric(frozen))
    # Flicker is still measured against the reference's (clean) flow.
    assert metric(flicker(talking), reference=talking).mean() > 2 * metric(talking).mean()


def test_a_translation_is_compensated(talking):
    # A real frame sliding 3 px right per frame: the flow undoes the motion almost entirely.
    shifts = [np.float32([[1, 0, 3 * t], [0, 1, 0]]) for t in range(4)]
    frames = np.stack([cv2.warpAffine(talking[0], m, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT) for m in shifts])
    unaligned = (((frames[1:].astype(np.float64) - frames[:-1]) / 255.0) ** 2).mean(axis=(1, 2, 3))
    assert np.all(WarpError()(frames) < 0.1 * unaligned)


def test_visible_mask_checks_forward_backward_consistency():
    h, w = 12, 16
    zero = np.zeros((h, w, 2), np.float32)
    assert visible_mask(zero, zero).all()
    # Consistent: frame t is frame t - 1 moved 2 px right; the 2 left columns came from outside.
    backward = np.zeros_like(zero)
    backward[..., 0] = -2.0
    forward = -backward
    mask = visible_mask(backward, forward)
    assert not mask[:, :2].any() and mask[:, 2:].all()
    # Inconsistent: both flows point the same way, so a round trip misses by 10 px.
    assert not visible_mask(forward * 2.5, forward * 2.5, use_motion_boundaries=False).any()


def test_motion_boundaries_are_excluded():
    # The right half moves by a fraction of a pixel, within the consistency test's 0.5 px^2
    # slack, so only the flow's jump between columns 9 and 10 can exclude a pixel.
    backward = np.zeros((10, 20, 2), np.float32)
    backward[:, 10:, 0] = -0.4
    forward = np.zeros_like(backward)
    without = visible_mask(backward, forward, use_motion_boundaries=False)
    with_boundaries = visible_mask(backward, forward)
    assert without.all()
    assert not with_boundaries[:, 9].any()
    assert with_boundaries[:, :9].all() and with_boundaries[:, 10:].all()


def test_warping_error_of_warped_frames():
    rng = np.random.default_rng(4)
    previous = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    zero = np.zeros((10, 12, 2), np.float32)
    everywhere = np.ones((10, 12), bool)
    current = previous.copy()
    current[0, 0] = 255 - current[0, 0]
    expected = ((current[0, 0].astype(np.float64) - previous[0, 0]) / 255.0) ** 2
    assert warping_error(previous, current, zero, everywhere) == pytest.approx(expected.sum() / (3 * 120), rel=1e-5)
    assert np.isnan(warping_error(previous, current, zero, np.zeros_like(everywhere)))
    np.testing.assert_array_equal(warp_by_flow(previous.astype(np.float32), zero), previous)


def test_warp_error_rejects_bad_input(talking):
    metric = WarpError()
    with pytest.raises(ValueError, match="uint8"):
        metric(talking.astype(np.float32))
    with pytest.raises(ValueError, match="reference"):
        metric(talking, reference=talking[:3])
    with pytest.raises(ValueError, match="poly_n"):
        WarpError(poly_n=3)
    assert metric(talking[:1]).shape == (0,)  # one frame: no pair
