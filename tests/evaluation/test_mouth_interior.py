"""The teeth-or-cavity share of an open mouth: flat lip colour scores 0, teeth and cavity score 1."""

from __future__ import annotations

import math

import numpy as np

from talkinghead.evaluation.metrics.mouth_interior import (
    INNER_LIP_RING,
    interior_contrast,
    interior_share,
    mean_over_open_frames,
)


def mouth_points(gap: float) -> np.ndarray:
    """(478, 2) points of a 128 px face whose inner lips are an ellipse 40 px wide and ``gap`` px high."""
    points = np.zeros((478, 2))
    centre = np.array([64.0, 90.0])
    n = len(INNER_LIP_RING)
    for i, index in enumerate(INNER_LIP_RING):
        t = 2 * math.pi * i / n
        points[index] = centre + [-20 * math.cos(t), -gap / 2 * math.sin(t)]
    points[13], points[14] = centre + [0, -gap / 2], centre + [0, gap / 2]
    points[33], points[263] = [34, 50], [94, 50]
    return points


def test_flat_lip_colour_scores_nothing_and_teeth_with_cavity_score_all():
    points = mouth_points(20.0)
    pink = np.full((128, 128, 3), (200, 110, 120), np.uint8)
    assert interior_share(pink, points) == 0.0
    assert interior_contrast(pink, points) == 0.0
    real = pink.copy()
    real[:90] = (235, 232, 225)  # teeth above the middle of the opening
    real[90:] = (25, 12, 14)  # the cavity below
    assert interior_share(real, points) == 1.0
    assert interior_contrast(real, points) > 0.7


def test_a_closed_mouth_is_not_scored():
    image = np.zeros((128, 128, 3), np.uint8)
    assert interior_share(image, mouth_points(2.0)) is None
    assert interior_contrast(image, mouth_points(2.0)) is None
    assert mean_over_open_frames(interior_share, [image, image], [mouth_points(2.0), None]) is None
