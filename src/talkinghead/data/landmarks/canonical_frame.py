"""Canonical 3-D decomposition of mediapipe's 478 face points: x = s R (x_c + delta) + t.

Following LivePortrait (Guo et al. 2024, §3.1, eq. 1), each landmark set splits into a head
pose (scale ``s``, 3-D rotation ``R``, translation ``t``) and an expression ``delta`` in the
canonical frame, with ``x_c`` the project's canonical mesh: ``CANONICAL_MESH`` (x, y as
fractions of the head crop) with the depth column ``CANONICAL_DEPTH``. The pose is fitted
(Umeyama similarity, depth included) on :data:`RIGID_POINTS` only, points that do not move
with expression: the forehead, the nose bridge, tip and sides, and the temples and outer
cheek bones (no eyelids, brows, lips or jaw). ``delta`` is everything else, measured in the
canonical frame, so it holds the person's face shape plus the expression; differences of
``delta`` between two frames of one person are the expression change alone, whatever the
head pose.

Matrices here act on column vectors: a point ``p`` (row of an (N, 3) array) maps to
``s * R @ p + t``, i.e. ``s * points @ R.T + t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from talkinghead.data.landmarks.canonical_depth import CANONICAL_DEPTH
from talkinghead.data.landmarks.canonical_mesh import CANONICAL_MESH
from talkinghead.data.landmarks.similarity import check_points, fit_similarity

NUM_POINTS = 478

FOREHEAD = (10, 151, 9, 109, 338, 67, 297, 108, 337, 69, 299, 104, 333)
NOSE_BRIDGE = (168, 6, 197, 195, 5, 4, 1)
NOSE_SIDES = (48, 278, 115, 344, 220, 440, 45, 275, 3, 248, 196, 419, 122, 351)
TEMPLES = (54, 284, 21, 251, 162, 389, 127, 356, 234, 454, 139, 368, 143, 372, 116, 345, 117, 346)
# Points whose position does not change with expression; the head pose is fitted on these.
RIGID_POINTS: tuple[int, ...] = FOREHEAD + NOSE_BRIDGE + NOSE_SIDES + TEMPLES


@dataclass
class CanonicalPose:
    """One face as head pose plus canonical expression: ``points = s R (x_c + delta) + t``.

    Args:
        scale: s, canonical crop fractions to the points' pixels.
        rotation: (3, 3) proper rotation R (column-vector convention).
        translation: (3,) t in the points' pixels.
        delta: (478, 3) expression (and face shape) offsets in the canonical frame.
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    delta: np.ndarray

    def compose(self) -> np.ndarray:
        """(478, 3) float64 points ``s R (x_c + delta) + t``."""
        shape = canonical_shape() + self.delta  # (478, 3)
        return self.scale * shape @ self.rotation.T + self.translation


@lru_cache(maxsize=1)
def canonical_shape() -> np.ndarray:
    """(478, 3) float64 canonical mesh x_c: x, y, depth as fractions of the head crop, centred."""
    shape = np.zeros((NUM_POINTS, 3))
    shape[:, :2] = np.asarray(CANONICAL_MESH, dtype=np.float64)
    shape[:, 2] = np.asarray(CANONICAL_DEPTH, dtype=np.float64)
    # Centred on the rigid points, so that rotations turn the head about its own centre and
    # t is where that centre is: a driver's rotation then does not also show up in its t.
    shape -= shape[list(RIGID_POINTS)].mean(axis=0)
    shape.setflags(write=False)
    return shape


def is_canonical_layout(points: np.ndarray) -> bool:
    """Whether ``points`` are mediapipe's (478, 3) points with a depth column to decompose."""
    array = np.asarray(points)
    return array.shape == (NUM_POINTS, 3) and bool(np.abs(array[:, 2]).max() > 0)


def decompose(points: np.ndarray) -> CanonicalPose:
    """Split (478, 3) mediapipe points into head pose and canonical expression.

    Args:
        points: (478, 3) landmarks: x, y in pixels, z depth on the same scale.

    Returns:
        The :class:`CanonicalPose`; its :meth:`~CanonicalPose.compose` gives ``points`` back.

    Raises:
        ValueError: not 478 points with depth, or non-finite values.
    """
    points = check_points(points, "points")
    if not is_canonical_layout(points):
        raise ValueError(
            f"the canonical decomposition needs mediapipe's (478, 3) points with depth, got shape {points.shape}; "
            "use the mediapipe landmark backend"
        )
    transform = fit_similarity(canonical_shape()[list(RIGID_POINTS)], points[list(RIGID_POINTS)])
    delta = transform.inverse_apply(points) - canonical_shape()  # (478, 3)
    return CanonicalPose(transform.scale, transform.rotation, transform.translation, delta)


def rotation_angle(first: np.ndarray, second: np.ndarray) -> float:
    """Angle in degrees of the rotation taking (3, 3) rotation ``first`` to ``second``."""
    relative = np.asarray(second) @ np.asarray(first).T
    cosine = np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)))
