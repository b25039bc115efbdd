"""The offline oracle: a semantic map drawn from iBUG-68 landmarks and a person mask.

LSR pre-trains its layout generator against an oracle segmentation (LSR §3.2 Eq. 2). When
the face-parsing network's weights are absent, this oracle stands in for it: face parts
are filled polygons of the landmark contours, the forehead is extrapolated above the
brows, and the person mask splits the rest into hair/head, neck, clothes and background.
Labels are in the CelebAMask-HQ space of :mod:`talkinghead.data.segmentation_classes`.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkinghead.data.segmentation_classes import CLASS_INDEX

# Classes this oracle can produce (the rest of the 19 stay unused).
LANDMARK_ORACLE_CLASSES = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose",
    "mouth", "u_lip", "l_lip", "neck", "cloth", "hair",
)

_SHIFT = 4  # sub-pixel precision bits for cv2.fillPoly


def _fill(labels: np.ndarray, polygon: np.ndarray, cls: str) -> None:
    pts = np.round(np.asarray(polygon, dtype=np.float64) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(labels, [pts.reshape(-1, 1, 2)], CLASS_INDEX[cls], lineType=cv2.LINE_8, shift=_SHIFT)


def _face_axes(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit 'up' (chin -> nose bridge), unit 'right' (image right) and face height."""
    up = p[27] - p[8]
    height = float(np.linalg.norm(up)) + 1e-6
    up = up / height
    right = np.array([-up[1], up[0]]) if up[1] < 0 else np.array([up[1], -up[0]])
    if np.dot(right, p[16] - p[0]) < 0:
        right = -right
    return up, right, height


def landmark_segmentation(points68: np.ndarray, size: int, person_mask: np.ndarray | None = None) -> np.ndarray:
    """Semantic map of a square ``size`` crop.

    Args:
        points68: (68, 2) iBUG landmarks in crop pixels.
        size: side of the crop.
        person_mask: optional (size, size) float mask of the person (1 = person).

    Returns:
        (size, size) uint8 class indices.
    """
    p = np.asarray(points68, dtype=np.float64)[:, :2]
    labels = np.zeros((size, size), dtype=np.uint8)
    up, right, height = _face_axes(p)

    if person_mask is not None:
        person = person_mask > 0.5
        # Split the person by the chin line: above is head (hair), below is neck or clothes.
        ys, xs = np.mgrid[0:size, 0:size]
        rel = np.stack([xs - p[8, 0], ys - p[8, 1]], axis=-1)
        along = rel @ up  # > 0 above the chin
        across = np.abs(rel @ right)
        jaw_width = float(np.linalg.norm(p[16] - p[0]))
        neck = (along <= 0) & (along > -0.6 * height) & (across < 0.33 * jaw_width)
        labels[person & (along > 0)] = CLASS_INDEX["hair"]
        labels[person & (along <= 0)] = CLASS_INDEX["cloth"]
        labels[person & neck] = CLASS_INDEX["neck"]

    # Face skin: the jaw line closed by the brows lifted to an estimated hairline.
    forehead = p[26:16:-1] + up * (0.45 * height)
    skin = np.zeros_like(labels)
    _fill(skin, np.concatenate([p[0:17], forehead]), "skin")
    if person_mask is not None:
        skin[~person] = 0
    labels[skin > 0] = CLASS_INDEX["skin"]

    # Nose: the bridge widened sideways, closed by the nose base.
    eye_span = float(np.linalg.norm(p[45] - p[36]))
    half = right * (0.07 * eye_span)
    bridge_r = p[27:31] - half
    bridge_l = p[30:26:-1] + half
    _fill(labels, np.concatenate([bridge_r, p[31:36], bridge_l]), "nose")

    # Brows: the landmark line thickened downwards.
    thickness = up * (0.05 * height)
    _fill(labels, np.concatenate([p[17:22], p[21:16:-1] - thickness]), "r_brow")
    _fill(labels, np.concatenate([p[22:27], p[26:21:-1] - thickness]), "l_brow")

    _fill(labels, p[36:42], "r_eye")
    _fill(labels, p[42:48], "l_eye")

    # Lips: outer contour halves closed by the inner contour; the inner contour is the mouth.
    _fill(labels, np.concatenate([p[48:55], p[64:59:-1]]), "u_lip")
    _fill(labels, np.concatenate([p[54:60], p[48:49], p[60:61], p[67:63:-1]]), "l_lip")
    _fill(labels, p[60:68], "mouth")
    return labels
