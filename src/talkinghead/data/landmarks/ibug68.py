"""The iBUG 68-point landmark layout and its correspondence with the mediapipe face mesh.

Every backend also stores its landmarks in this layout so that every downstream part
(rasterisers, crops, metrics such as NMKE) can rely on it, whatever the detector.
Index ranges follow the 300-W / iBUG annotation (subject's right = image left).
"""

from __future__ import annotations

import numpy as np

# Part name -> (first, last + 1) index range, and whether the contour is closed.
PARTS: dict[str, tuple[int, int, bool]] = {
    "jaw": (0, 17, False),
    "right_brow": (17, 22, False),
    "left_brow": (22, 27, False),
    "nose_bridge": (27, 31, False),
    "nose_base": (31, 36, False),
    "right_eye": (36, 42, True),
    "left_eye": (42, 48, True),
    "outer_lips": (48, 60, True),
    "inner_lips": (60, 68, True),
}

# Outer eye corners, used to normalise distances (inter-ocular distance, NMKE).
RIGHT_EYE_OUTER = 36
LEFT_EYE_OUTER = 45

# For each iBUG point, the mediapipe face-mesh vertex at the same anatomical place.
# Checked against dlib's 68-point predictor on real frames (tests/data/test_landmarks.py);
# the jaw points of the mesh sit on its face oval, slightly outside dlib's jaw line.
MEDIAPIPE_TO_IBUG68 = np.array(
    [
        # jaw, image left to image right
        162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
        # right brow, left brow
        71, 63, 105, 66, 107, 336, 296, 334, 293, 301,
        # nose bridge, nose base
        168, 197, 5, 4, 75, 97, 2, 326, 305,
        # right eye, left eye (from the outer corner, clockwise in the image)
        33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
        # outer lips from the right corner, inner lips from the right corner
        61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
        78, 82, 13, 312, 308, 317, 14, 87,
    ],
    dtype=np.int64,
)
assert MEDIAPIPE_TO_IBUG68.shape == (68,)


def dense_to_ibug68(dense: np.ndarray) -> np.ndarray:
    """(N>=468, 2 or 3) mediapipe mesh -> (68, 2) iBUG points."""
    if dense.shape[0] < 468:
        raise ValueError(f"expected a mediapipe mesh of >= 468 points, got {dense.shape[0]}")
    return dense[MEDIAPIPE_TO_IBUG68, :2].astype(np.float32)


def interocular_distance(points68: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners; works on (..., 68, 2) arrays."""
    return np.linalg.norm(points68[..., LEFT_EYE_OUTER, :2] - points68[..., RIGHT_EYE_OUTER, :2], axis=-1)
