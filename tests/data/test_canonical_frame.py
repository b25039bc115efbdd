"""Canonical 3-D decomposition: known s, R, t, delta come back from synthetic faces."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.data.landmarks.canonical_frame import (
    RIGID_POINTS,
    CanonicalPose,
    canonical_shape,
    decompose,
    rotation_angle,
)
from talkinghead.data.landmarks.openings import LIP_CONTOURS, eye_opening, mouth_opening


def euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation from angles in degrees about y, x and z."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def open_mouth_delta(gap: float) -> np.ndarray:
    """(478, 3) expression that drops the lower lip by ``gap`` canonical units (rigid points still)."""
    delta = np.zeros((478, 3))
    delta[list(LIP_CONTOURS[1]), 1] = gap
    return delta


@pytest.mark.parametrize("angles", [(0, 0, 0), (35, -10, 5), (-40, 15, -12)])
def test_decomposition_recovers_pose_and_expression(angles):
    rng = np.random.default_rng(0)
    delta = open_mouth_delta(0.05) + rng.normal(scale=0.002, size=(478, 3))
    delta[list(RIGID_POINTS)] = 0.0
    truth = CanonicalPose(scale=240.0, rotation=euler(*angles), translation=np.array([130.0, 90.0, 7.0]), delta=delta)
    pose = decompose(truth.compose())
    assert pose.scale == pytest.approx(240.0, rel=1e-9)
    np.testing.assert_allclose(pose.rotation, truth.rotation, atol=1e-10)
    assert rotation_angle(pose.rotation, truth.rotation) < 1e-4  # arccos loses digits near 0
    np.testing.assert_allclose(pose.translation, truth.translation, atol=1e-8)
    np.testing.assert_allclose(pose.delta, delta, atol=1e-10)
    np.testing.assert_allclose(pose.compose(), truth.compose(), atol=1e-8)


def test_decomposition_rejects_points_without_depth():
    flat = np.zeros((478, 3))
    flat[:, :2] = canonical_shape()[:, :2] * 200
    with pytest.raises(ValueError, match="478, 3"):
        decompose(flat)
    with pytest.raises(ValueError, match="478, 3"):
        decompose(np.ones((68, 3)))


def test_openings_measure_the_lip_and_lid_gaps():
    shape = canonical_shape()
    opened = shape + open_mouth_delta(0.05)
    corners = np.linalg.norm(shape[33, :2] - shape[263, :2])
    # rel=1e-3: points 13 and 14 are near, not exactly, vertical
    assert mouth_opening(opened) - mouth_opening(shape) == pytest.approx(0.05 / corners, rel=1e-3)
    assert eye_opening(opened) == pytest.approx(eye_opening(shape))
    # batched over frames, scale-free
    both = np.stack([shape, opened * 3.0])
    np.testing.assert_allclose(mouth_opening(both), [mouth_opening(shape), mouth_opening(opened)])


def test_rotation_angle_measures_degrees():
    assert rotation_angle(np.eye(3), euler(30, 0, 0)) == pytest.approx(30.0)
    assert rotation_angle(euler(0, 10, 0), euler(0, -15, 0)) == pytest.approx(25.0)
