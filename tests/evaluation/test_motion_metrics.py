"""Cross-identity motion metrics on hand-made series and synthetic faces."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.data.landmarks.canonical_frame import CanonicalPose
from talkinghead.data.landmarks.openings import LIP_CONTOURS
from talkinghead.evaluation.metrics.motion_transfer import (
    CROSS_METRICS,
    amplitude_ratio,
    cross_identity_metrics,
    identity_kept,
    pearson_r,
)


def _yaw(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _pose(yaw: float, gap: float) -> CanonicalPose:
    delta = np.zeros((478, 3))
    delta[list(LIP_CONTOURS[1]), 1] = gap
    return CanonicalPose(200.0, _yaw(yaw), np.array([100.0, 100.0, 0.0]), delta)


def test_series_metrics_on_hand_made_series():
    driver = np.sin(np.linspace(0, 6, 50)) + 1.5
    assert pearson_r(driver, driver) == pytest.approx(1.0)
    assert amplitude_ratio(driver, driver) == pytest.approx(1.0)
    frozen = np.full(50, 0.2)
    assert amplitude_ratio(frozen, driver) == pytest.approx(0.0, abs=1e-12)
    assert pearson_r(frozen, driver) == 0.0
    assert amplitude_ratio(0.5 * driver, driver) == pytest.approx(0.5)
    assert pearson_r(-driver, driver) == pytest.approx(-1.0)
    assert pearson_r(driver, np.ones(50)) is None  # a still driver says nothing


def test_identity_kept_counts_frames_under_dlib_threshold():
    assert identity_kept(np.array([0.3, 0.5, 0.7, np.nan])) == pytest.approx(0.5)


def test_cross_identity_metrics_perfect_copy_and_frozen_result():
    gaps = 0.04 * (1 + np.sin(np.linspace(0, 6, 20)))
    yaws = np.linspace(-10, 10, 20)
    target = [_pose(y, g) for y, g in zip(yaws, gaps)]
    driver = [p.compose() for p in target]
    copy = cross_identity_metrics(driver, driver, target, np.zeros(20))
    assert set(copy) == set(CROSS_METRICS)
    assert copy["mouth_r"] == pytest.approx(1.0) and copy["mouth_amp"] == pytest.approx(1.0)
    assert copy["pose_err"] == pytest.approx(0.0, abs=1e-4) and copy["expr_err"] == pytest.approx(0.0, abs=1e-8)
    assert copy["id_kept"] == 1.0
    frozen = [_pose(0.0, 0.0).compose() for _ in target]
    still = cross_identity_metrics(frozen, driver, target)
    assert still["mouth_amp"] == pytest.approx(0.0, abs=1e-9)
    assert still["pose_err"] == pytest.approx(np.mean(np.abs(yaws)), rel=1e-6)
    assert still["expr_err"] > 0 and still["id_kept"] is None
