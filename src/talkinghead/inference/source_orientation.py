"""Sideways source photos: measure the face's roll and turn the photo upright.

A photo taken with the camera on its side and saved without an EXIF orientation tag shows
the face lying at 90 degrees. The detector still finds it, but the model was trained on
upright heads and would animate it sideways without any sign of trouble. The roll of the
eye line (iBUG points 36-41 and 42-47) tells: beyond :data:`MAX_ROLL_DEGREES` the photo is
rotated by the nearest multiple of 90 degrees and the face detected again.

An upside-down photo (180 degrees) shows no roll: the landmark model fits an upright face
onto it (eyes where the mouth is). The detector's confidence tells instead: on the real
photos of the test set an upright face scores 0.83-0.98 and the same face turned 180 degrees
0.57-0.79 (or is not found), so a photo whose half turn scores clearly higher
(:data:`UPSIDE_DOWN_MARGIN`) is taken as upside down.
"""

from __future__ import annotations

import numpy as np

# Beyond this roll a face is taken as lying on its side (people tilt their heads up to ~30°).
MAX_ROLL_DEGREES = 45.0
# How much higher the detection confidence of the half-turned photo must be to call it upside down
# (the smallest gap upright vs turned among the 19 real portraits was 0.12).
UPSIDE_DOWN_MARGIN = 0.05


def is_upside_down(confidence: float, turned_confidence: float | None) -> bool:
    """Whether a face found with ``confidence`` is upside down, given the half-turned photo's best face."""
    return turned_confidence is not None and turned_confidence > confidence + UPSIDE_DOWN_MARGIN


def face_roll_degrees(ibug68: np.ndarray) -> float:
    """Roll of a face in degrees from its (68, 2) iBUG points: 0 upright, +90 lying with its top to the left.

    The angle of the line from the image-left eye (points 36-41) to the image-right eye
    (42-47), in image coordinates (y down).
    """
    points = np.asarray(ibug68, dtype=np.float64)[:, :2]
    dx, dy = points[42:48].mean(axis=0) - points[36:42].mean(axis=0)
    return float(np.degrees(np.arctan2(dy, dx)))


def upright_turns(roll: float) -> int:
    """The ``np.rot90`` count (counter-clockwise quarter turns) that brings a face of ``roll`` upright."""
    return int(np.round(roll / 90.0))


def rotate_quarter_turns(photo: np.ndarray, turns: int) -> np.ndarray:
    """(H, W, 3) photo turned by ``turns`` quarter turns counter-clockwise (negative: clockwise)."""
    return np.ascontiguousarray(np.rot90(photo, turns % 4))


def describe_turn(turns: int) -> str:
    """``"90° clockwise"``, ``"90° counter-clockwise"`` or ``"180°"``."""
    turns = turns % 4
    return {1: "90° counter-clockwise", 2: "180°", 3: "90° clockwise"}.get(turns, "0°")
