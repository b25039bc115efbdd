"""68-point landmarks from FAN (2DFAN4) given a face box, as the face-alignment package does.

The pipeline follows face-alignment's ``get_landmarks_from_image`` so that the released
weights see the inputs they were trained on:

1. centre and scale from the box: the centre is the box centre moved up by 12 % of the box
   height, the scale is ``(width + height) / 195`` (195 px is the face-alignment detectors'
   reference size); the crop spans ``200 * scale`` pixels;
2. crop that square (zero padding outside the image) and resize it to 256x256, RGB / 255;
3. FAN's last stack gives 68 heatmaps at 64x64;
4. each heatmap's arg-max moves a quarter pixel towards its larger neighbour, and the point
   goes back to image pixels through the inverse of the crop transform.

Unlike face-alignment, the final coordinates are not truncated to integers.
"""

from __future__ import annotations


import cv2
import numpy as np
import torch

from talkinghead.models.fan import FAN, NUM_LANDMARKS
from talkinghead.weights import load_into

INPUT_SIZE = 256  # FAN input side, pixels
REFERENCE_SCALE = 195.0  # face-alignment's FaceDetector.reference_scale (SFD, BlazeFace, dlib)
CROP_UNIT = 200.0  # face-alignment crops 200 * scale pixels
CENTER_SHIFT = 0.12  # the centre moves up by this fraction of the box height

Box = tuple[float, float, float, float]


def box_to_center_scale(box: Box, reference_scale: float = REFERENCE_SCALE) -> tuple[np.ndarray, float]:
    """Crop centre and scale of face-alignment for a face box.

    Args:
        box: x0, y0, x1, y1 in image pixels.
        reference_scale: box size (width + height) that maps to scale 1.

    Returns:
        ``(center (2,) float64, scale)``; the crop side is ``200 * scale`` pixels.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"face box must have x1 > x0 and y1 > y0, got {box}")
    center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 - (y1 - y0) * CENTER_SHIFT])
    return center, (x1 - x0 + y1 - y0) / reference_scale


def crop_to_image(points: np.ndarray, center: np.ndarray, scale: float, resolution: float) -> np.ndarray:
    """Map points from a ``resolution``-sized crop frame back to image pixels.

    This is the inverse of face-alignment's ``transform``:
    ``image = (crop - resolution / 2) * (200 * scale) / resolution + center``.

    Args:
        points: (..., 2) x, y in the crop frame.
        center: (2,) crop centre in image pixels.
        scale: crop scale (side = 200 * scale image pixels).
        resolution: side of the crop frame (256 for the input, 64 for the heatmaps).
    """
    side = CROP_UNIT * scale
    return (np.asarray(points, np.float64) - resolution / 2.0) * (side / resolution) + np.asarray(center)


def crop_face(
    image: np.ndarray, center: np.ndarray, scale: float, resolution: int = INPUT_SIZE
) -> np.ndarray:
    """The square face crop that FAN sees, as face-alignment's ``crop`` makes it.

    The corners are the crop-frame points (1, 1) and (resolution, resolution) mapped to the
    image and truncated to integers; the pixels between them (zeros outside the image) are
    resized to ``resolution`` with bilinear interpolation.

    Args:
        image: (H, W, 3) uint8 RGB.
        center: (2,) crop centre in image pixels.
        scale: crop scale.
        resolution: output side.

    Returns:
        (resolution, resolution, 3) uint8 RGB.
    """
    corners = crop_to_image(np.array([[1.0, 1.0], [resolution, resolution]]), center, scale, resolution)
    # int() truncates toward zero, like face-alignment's tensor.int().
    left, top = int(corners[0, 0]), int(corners[0, 1])
    right, bottom = int(corners[1, 0]), int(corners[1, 1])
    if right <= left or bottom <= top:
        raise ValueError(
            f"face crop is empty (center {np.asarray(center).tolist()}, scale {scale}); the box is too small"
        )
    height, width = image.shape[:2]
    canvas = np.zeros((bottom - top, right - left, image.shape[2]), dtype=np.uint8)
    src_x0, src_x1 = max(left, 0), min(right, width)
    src_y0, src_y1 = max(top, 0), min(bottom, height)
    if src_x1 > src_x0 and src_y1 > src_y0:
        inside = image[src_y0:src_y1, src_x0:src_x1]
        canvas[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = inside
    return cv2.resize(canvas, (resolution, resolution), interpolation=cv2.INTER_LINEAR)


def decode_heatmaps(
    heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks in image pixels from FAN heatmaps (face-alignment's ``get_preds_fromhm``).

    Each point is its heatmap's arg-max (column u, row v), shifted by 0.25 towards the larger
    of its two neighbours along x and along y (only away from the border), taken at the
    pixel centre (``u + 0.5``, ``v + 0.5``) and mapped back with :func:`crop_to_image`.

    Args:
        heatmaps: (n, k, h, w) heatmaps (h = w = 64 for 2DFAN4).
        centers: (n, 2) crop centres in image pixels.
        scales: (n,) crop scales.

    Returns:
        ``(points (n, k, 2) float32 image pixels, scores (n, k) float32 heatmap maxima)``.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n, k, h, w = heatmaps.shape
    if h != w:
        raise ValueError(f"FAN heatmaps must be square, got {h}x{w}")
    centers, scales = np.asarray(centers, np.float64), np.asarray(scales, np.float64)
    flat = heatmaps.reshape(n, k, h * w)
    index = flat.argmax(axis=2)  # (n, k)
    scores = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
    u, v = index % w, index // w  # (n, k) column and row
    points = np.stack([u, v], axis=-1).astype(np.float64)  # (n, k, 2)
    inner = (u > 0) & (u < w - 1) & (v > 0) & (v < h - 1)
    bi, ki = np.nonzero(inner)
    ui, vi = u[bi, ki], v[bi, ki]
    dx = heatmaps[bi, ki, vi, ui + 1] - heatmaps[bi, ki, vi, ui - 1]
    dy = heatmaps[bi, ki, vi + 1, ui] - heatmaps[bi, ki, vi - 1, ui]
    points[bi, ki, 0] += 0.25 * np.sign(dx)
    points[bi, ki, 1] += 0.25 * np.sign(dy)
    points += 0.5  # pixel index -> pixel centre in the heatmap frame
    image_points = np.stack(
        [crop_to_image(points[i], centers[i], float(scales[i]), float(h)) for i in range(n)]
    )
    return image_points.astype(np.float32), scores.astype(np.float32)


class FANLandmarker:
    """68 iBUG landmarks inside given face boxes with the released 2DFAN4 network.

    Args:
        network: a :class:`FAN` (eval mode is set here).
        device: where the network runs.
        reference_scale: box size mapping to crop scale 1 (195 as in face-alignment).
    """

    def __init__(
        self, network: FAN, device: str | torch.device = "cpu", reference_scale: float = REFERENCE_SCALE
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.reference_scale = reference_scale

    @classmethod
    def from_registry(cls, device: str | torch.device = "cpu") -> FANLandmarker:
        """Load the installed ``fan`` weights (``talkinghead weights add fan FILE``) strictly.

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
            CorruptWeightsError: the file cannot be read.
            WeightsError: the file holds another network's weights.
        """
        network = FAN(num_stacks=4)
        load_into(network, "fan", "FAN 68-point landmarks (--landmarks fan)")
        return cls(network, device=device)

    @torch.no_grad()
    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """Last-stack heatmaps of face crops.

        Args:
            crops: (n, 256, 256, 3) uint8 RGB crops (see :func:`crop_face`).

        Returns:
            (n, 68, 64, 64) float32.
        """
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (n, 3, 256, 256) RGB in [0, 1]
        return self.network(x)[-1].float().cpu().numpy()

    def predict_batch(self, image_rgb: np.ndarray, boxes: list[Box]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of several faces of one image in one network call.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            boxes: face boxes x0, y0, x1, y1 in pixels.

        Returns:
            ``(points (n, 68, 2) float32 image pixels, confidences (n,) float32)``; a
            confidence is the mean over the 68 heatmap maxima (about 1 for a clear face).
        """
        _check_image(image_rgb)
        if not boxes:
            return np.zeros((0, NUM_LANDMARKS, 2), np.float32), np.zeros((0,), np.float32)
        geometry = [box_to_center_scale(box, self.reference_scale) for box in boxes]
        centers = np.stack([c for c, _ in geometry])
        scales = np.array([s for _, s in geometry])
        crops = np.stack([crop_face(image_rgb, c, s) for c, s in geometry])
        points, scores = decode_heatmaps(self.heatmaps(crops), centers, scales)
        return points, scores.mean(axis=1)

    def predict(self, image_rgb: np.ndarray, box: Box) -> tuple[np.ndarray, float]:
        """Landmarks of the face in ``box``.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            box: x0, y0, x1, y1 of the face in pixels (from any face detector).

        Returns:
            ``(points (68, 2) float32 image pixels, confidence)`` with confidence the mean
            heatmap maximum.
        """
        points, confidences = self.predict_batch(image_rgb, [box])
        return points[0], float(confidences[0])


def _check_image(image: np.ndarray) -> None:
    is_rgb = isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
    if not (is_rgb and image.dtype == np.uint8):
        raise ValueError(
            "FANLandmarker expects an (H, W, 3) uint8 RGB image, got "
            f"{getattr(image, 'dtype', type(image))} of shape {getattr(image, 'shape', None)}"
        )
