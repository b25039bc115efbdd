"""One stable square crop per clip, and mapping images and landmarks into it.

The box is computed once from the landmark boxes of every sampled frame (their union),
so the crop does not jitter from frame to frame. A box that reaches past the image border
is then shifted back inside it (:func:`shift_inside`): padding with black there, as the
training data of the bundled models was cropped, makes the model copy the black band into
every result frame. Only a photo smaller than the crop still leaves black padding, at the
sides where the photo ends.
"""

from __future__ import annotations

import cv2
import numpy as np


def clip_crop_box(landmark_boxes: np.ndarray, scale: float, vertical_offset: float) -> np.ndarray:
    """Square box containing the head over a whole clip.

    Args:
        landmark_boxes: (F, 4) per-frame landmark boxes x0, y0, x1, y1.
        scale: side of the square relative to the larger side of the union box.
        vertical_offset: upward shift of the centre as a fraction of the side.

    Returns:
        (4,) float box x0, y0, x1, y1 with x1 - x0 == y1 - y0.
    """
    boxes = np.asarray(landmark_boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        raise ValueError("clip_crop_box needs at least one landmark box")
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    side = max(x1 - x0, y1 - y0) * scale
    cx = (x0 + x1) / 2
    cy = (y0 + y1) / 2 - vertical_offset * side
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dtype=np.float64)


def shift_inside(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """Move a square box the least distance that keeps it inside a ``width`` x ``height`` image.

    On an axis where the image is narrower than the box, the box is moved only as far as it
    takes to cover the image on that axis (the rest stays padding, split where it already lay).
    The side is unchanged, so the face keeps the scale the model was trained at.

    Args:
        box: (4,) x0, y0, x1, y1 of a square.
        width, height: the image size in pixels.

    Returns:
        (4,) float64 box x0, y0, x1, y1 of the same side.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    side_x, side_y = x1 - x0, y1 - y0
    # x0 in [0, width - side] when the box fits, else in [width - side, 0] (covering the image)
    x0 = float(np.clip(x0, min(0.0, width - side_x), max(0.0, width - side_x)))
    y0 = float(np.clip(y0, min(0.0, height - side_y), max(0.0, height - side_y)))
    return np.array([x0, y0, x0 + side_x, y0 + side_y], dtype=np.float64)


def center_square_box(width: int, height: int) -> np.ndarray:
    """The largest centred square of an image (used with ``crop: none``)."""
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    return np.array([x0, y0, x0 + side, y0 + side], dtype=np.float64)


def crop_image(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Cut ``box`` out of ``image`` (padding with black outside it) and resize to ``size``.

    Callers shift their boxes inside the image first (:func:`shift_inside`); the black
    padding is left only where the image is smaller than the box.

    Area interpolation when shrinking, bicubic when enlarging.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x1 - w), max(0, y1 - h)
    region = image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    if pad_l or pad_t or pad_r or pad_b:
        region = cv2.copyMakeBorder(region, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_CONSTANT, value=0)
    side = region.shape[0]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(region, (size, size), interpolation=interp)


def points_to_crop(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Map (..., 2 or 3) image-pixel points into crop pixels (z is scaled like x and y)."""
    x0, y0 = round(box[0]), round(box[1])
    factor = size / (round(box[2]) - round(box[0]))
    out = np.array(points, dtype=np.float32, copy=True)
    out[..., 0] = (out[..., 0] - x0) * factor
    out[..., 1] = (out[..., 1] - y0) * factor
    if out.shape[-1] > 2:
        out[..., 2:] *= factor
    return out
