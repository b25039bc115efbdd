"""The head-pose stabiliser: a still head is held steady, a turn is followed, expressions pass untouched."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.cli import build_parser
from talkinghead.data.landmarks.canonical_frame import RIGID_POINTS, CanonicalPose, rotation_angle
from talkinghead.data.landmarks.openings import LIP_CONTOURS, mouth_opening
from talkinghead.inference.motion import MotionTransfer
from talkinghead.inference.pose_filter import PoseFilter


def yaw(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def pose(degrees: float = 0.0, shift=(0.0, 0.0, 0.0), gap: float = 0.0) -> CanonicalPose:
    delta = np.zeros((478, 3))
    delta[list(LIP_CONTOURS[1]), 1] = gap
    return CanonicalPose(scale=200.0, rotation=yaw(degrees), translation=np.array([120.0, 110.0, 0.0]) + shift,
                         delta=delta)


def test_a_still_pose_passes_unchanged_and_noise_is_damped():
    steady = PoseFilter()
    first = steady(pose())
    assert first.scale == 200.0 and np.array_equal(first.translation, pose().translation)
    again = steady(pose())
    np.testing.assert_allclose(again.rotation, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(again.translation, pose().translation, atol=1e-12)

    rng = np.random.default_rng(0)
    noisy = [pose(rng.normal(0, 0.3), rng.normal(0, 0.5, 3)) for _ in range(200)]
    stabiliser = PoseFilter()
    filtered = [stabiliser(p) for p in noisy]
    raw_steps = np.linalg.norm(np.diff([p.translation for p in noisy], axis=0), axis=1).mean()
    steps = np.linalg.norm(np.diff([p.translation for p in filtered], axis=0), axis=1).mean()
    assert steps < 0.4 * raw_steps
    for p in filtered:  # still a proper rotation
        np.testing.assert_allclose(p.rotation @ p.rotation.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(p.rotation) == pytest.approx(1.0)


def test_a_head_turn_is_followed_with_little_lag():
    stabiliser = PoseFilter()
    angles = np.concatenate([np.zeros(10), np.linspace(0, 30, 15), np.full(15, 30.0)])  # 2 degrees a frame
    out = [stabiliser(pose(a, (a, 0, 0))) for a in angles]
    lag = [rotation_angle(o.rotation, yaw(a)) for o, a in zip(out, angles)]
    assert max(lag[10:25]) < 2.0  # under one frame of the turn behind
    assert lag[-1] < 0.5 and abs(out[-1].translation[0] - (120 + 30)) < 1.0


def test_expressions_pass_through_and_the_neutral_frame_gives_the_source():
    source = pose(-20).compose()
    neutral = pose(5).compose()
    transfer = MotionTransfer("relative", size=128, source_points=source, reference_points=neutral,
                              pose_filter=PoseFilter())
    np.testing.assert_allclose(transfer(neutral), source, atol=1e-3)
    shouting = transfer(pose(5, gap=0.08).compose())  # the mouth opens at once, no low-pass on it
    unfiltered = MotionTransfer("relative", size=128, source_points=source, reference_points=neutral)
    assert mouth_opening(shouting) == pytest.approx(mouth_opening(unfiltered(pose(5, gap=0.08).compose())), rel=1e-6)
    assert mouth_opening(shouting) > mouth_opening(source) + 0.1
    assert np.abs(shouting[list(RIGID_POINTS)] - source[list(RIGID_POINTS)]).max() < 1e-3


def test_the_cli_turns_it_off_with_no_stabilize():
    base = ["animate", "--source", "a.jpg", "--driving", "b.mp4", "--output", "o.mp4"]
    assert build_parser().parse_args(base).stabilize is True
    assert build_parser().parse_args(base + ["--no-stabilize"]).stabilize is False


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="min_cutoff"):
        PoseFilter(min_cutoff=0)
    with pytest.raises(ValueError, match="beta"):
        PoseFilter(beta=-1)
