"""Does an open mouth show a mouth's inside? Teeth and cavity in its opening, and their contrast.

A warp of a closed-mouthed photo fills an opening with stretched lip: a flat pink or dark-red
patch. A real open mouth shows bright, nearly colourless teeth beside a dark cavity. Inside
the inner-lip contour of the asked landmarks (mediapipe's 20 inner-lip points, in the
image's pixels; the pixel ring along the contour left out, it is lip edge), with brightness
Y (Rec. 601, 0..1) and saturation ``(max - min) / max``:

- ``interior_share``: the share of pixels that are teeth (``Y > TEETH_BRIGHTNESS``,
  saturation below ``TEETH_SATURATION``) or cavity (``Y < CAVITY_BRIGHTNESS``);
- ``interior_contrast``: the spread of Y, its 90th minus its 10th percentile: about 0.1 for a
  flat patch of any colour, 0.4 and more where teeth meet cavity.

Both are measured only where the mouth is open (the asked inner-lip gap at least
``MIN_OPENING`` of the eye-corner distance); a real driver scores them too, as the reference.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkinghead.data.landmarks.openings import mouth_opening
from talkinghead.models.mouth_geometry import INNER_LIP_RING

TEETH_BRIGHTNESS = 0.55
TEETH_SATURATION = 0.35
CAVITY_BRIGHTNESS = 0.22
MIN_OPENING = 0.15
MIN_PIXELS = 20  # an opening this small in the image says nothing


def _opening_pixels(image: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """(n, 3) RGB in [0, 1] of the opening's pixels, or None for a closed or tiny mouth."""
    points = np.asarray(points, dtype=np.float64)
    if mouth_opening(points) < MIN_OPENING:
        return None
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(INNER_LIP_RING), :2]).astype(np.int32)], 1)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # the contour's own pixels are lip edge
    inside = mask.astype(bool)
    if inside.sum() < MIN_PIXELS:
        return None
    return image[inside].astype(np.float64) / 255.0


def _brightness(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def interior_share(image: np.ndarray, points: np.ndarray) -> float | None:
    """Share in [0, 1] of the opening's pixels that are teeth or cavity; None for a closed or tiny mouth.

    Args:
        image: (H, W, 3) uint8 RGB.
        points: (478, >= 2) the landmarks the image was asked to show, in its pixels.
    """
    rgb = _opening_pixels(image, points)
    if rgb is None:
        return None
    brightness = _brightness(rgb)
    top = rgb.max(axis=1)
    saturation = (top - rgb.min(axis=1)) / np.maximum(top, 1e-6)
    teeth = (brightness > TEETH_BRIGHTNESS) & (saturation < TEETH_SATURATION)
    cavity = brightness < CAVITY_BRIGHTNESS
    return float((teeth | cavity).mean())


def interior_contrast(image: np.ndarray, points: np.ndarray) -> float | None:
    """90th minus 10th percentile of the opening's brightness (0..1); None for a closed or tiny mouth."""
    rgb = _opening_pixels(image, points)
    if rgb is None:
        return None
    low, high = np.percentile(_brightness(rgb), [10, 90])
    return float(high - low)


def mean_over_open_frames(measure, images, points) -> float | None:
    """Mean of ``measure(image, points)`` over the frames where the mouth is open (None: no such frame)."""
    values = [measure(image, p) for image, p in zip(images, points) if p is not None]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None
