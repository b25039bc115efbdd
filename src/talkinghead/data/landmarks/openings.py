"""Mouth and eye opening ratios of mediapipe's 478 face points.

The opening of the mouth is the inner-lip gap (points 13 and 14) over the distance of the
outer eye corners (33 and 263), and that of the eyes the mean lid gap (159-145 and 386-374)
over the same distance, so both are independent of face size. Used to retarget motion
(``inference.motion``) and by the cross-identity metrics.
"""

from __future__ import annotations

import numpy as np

OUTER_EYE_CORNERS = (33, 263)
INNER_LIPS = (13, 14)  # upper, lower
EYE_LIDS = ((159, 145), (386, 374))  # (upper, lower) of the right and the left eye

# Lip and lid contours moved by retargeting and by the guard that keeps lips from crossing:
# (upper points, lower points) per region. Each lip moves whole, its outer contour with its
# inner one, so that opening or closing the mouth never thins a lip to a line.
LIP_CONTOURS = (
    (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 185, 40, 39, 37, 0, 267, 269, 270, 409),
    (95, 88, 178, 87, 14, 317, 402, 318, 324, 146, 91, 181, 84, 17, 314, 405, 321, 375),
)
EYE_CONTOURS = (
    (246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398),
    (7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382),
)


def _distance(points: np.ndarray, first: int, second: int) -> np.ndarray:
    """(...,) x, y distance between two points of (..., 478, d) landmarks."""
    return np.linalg.norm(points[..., first, :2] - points[..., second, :2], axis=-1)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """(...,) inner-lip gap over the outer-eye-corner distance of (..., 478, d) points."""
    points = np.asarray(points, dtype=np.float64)
    return _distance(points, *INNER_LIPS) / _distance(points, *OUTER_EYE_CORNERS)


def eye_opening(points: np.ndarray) -> np.ndarray:
    """(...,) mean eyelid gap over the outer-eye-corner distance of (..., 478, d) points."""
    points = np.asarray(points, dtype=np.float64)
    gaps = sum(_distance(points, upper, lower) for upper, lower in EYE_LIDS) / len(EYE_LIDS)
    return gaps / _distance(points, *OUTER_EYE_CORNERS)
