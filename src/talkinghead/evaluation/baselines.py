"""Reference reenactment methods that need no training: copy-source and landmark-warp.

Both take the K-shot input of one person and the target's landmarks and return one frame, so
the evaluation protocol can call them in place of a model (and a user gets a quick, crude
reenactment without one)::

    baseline(source_images, source_landmarks, target_landmarks) -> image
    # (k, h, w, 3) uint8, (k, p, 2) float, (p, 2) float -> (h, w, 3) uint8

Landmarks are pixel coordinates in the same crop frame as the images (usually the 68 iBUG
points; any fixed point layout works).

* ``copy-source`` returns the source frame whose landmarks are closest to the target's: the
  floor any model has to beat on pose and expression.
* ``landmark-warp`` is a classical piecewise-affine warp of that closest frame: the target
  landmarks, with fixed anchor points along the image border, are Delaunay-triangulated, and
  every output pixel is sampled from the source position that the affine map of its triangle
  (target triangle -> same triangle on the source landmarks) gives.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scipy.spatial import Delaunay

from talkinghead.errors import UnknownNameError

Baseline = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

# Anchor points per image side (corners included) pinned to the border so the warp fades to
# the identity there: the background is kept wherever no landmark moves.
ANCHORS_PER_SIDE = 5


def _check_inputs(
    source_images: np.ndarray, source_landmarks: np.ndarray, target_landmarks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three inputs as (k, h, w, 3) uint8, (k, p, 2) float64, (p, 2) float64, or a ValueError."""
    images = np.asarray(source_images)
    if images.ndim == 3:
        images = images[None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f"source_images: expected (k, h, w, 3) uint8 RGB with k >= 1, got {images.dtype} "
                         f"{images.shape}")
    points = np.asarray(source_landmarks, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    target = np.asarray(target_landmarks, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 2 or len(points) != len(images):
        raise ValueError(f"source_landmarks: expected ({len(images)}, p, 2) points, got {points.shape}")
    if target.shape != points.shape[1:]:
        raise ValueError(f"target_landmarks: expected {points.shape[1:]} points like the sources, got {target.shape}")
    if not (np.isfinite(points).all() and np.isfinite(target).all()):
        raise ValueError("landmarks contain NaN/inf: every source frame and the target need a detected face")
    return images, points, target


def closest_source(source_landmarks: np.ndarray, target_landmarks: np.ndarray) -> int:
    """Index of the source whose landmarks are nearest the target's.

    The distance is the plain mean Euclidean distance between corresponding points, in crop
    pixels, with nothing removed first: in the protocol, sources and target are crops of the
    same person in the same crop frame, so where the head sits matters as much as the
    expression, and a copy that puts the face where the target's is is the better baseline.
    Ties go to the first source.
    """
    points = np.asarray(source_landmarks, np.float64)  # (k, p, 2)
    target = np.asarray(target_landmarks, np.float64)  # (p, 2)
    distances = np.linalg.norm(points - target[None], axis=-1).mean(axis=-1)  # (k,)
    return int(np.argmin(distances))


def copy_source(source_images: np.ndarray, source_landmarks: np.ndarray, target_landmarks: np.ndarray) -> np.ndarray:
    """The K-shot frame whose landmarks are closest to the target's (see :func:`closest_source`).

    Args:
        source_images: (k, h, w, 3) uint8 RGB.
        source_landmarks: (k, p, 2) pixel coordinates of each source frame.
        target_landmarks: (p, 2) pixel coordinates of the target.

    Returns:
        (h, w, 3) uint8, a copy of the chosen source frame.
    """
    images, points, target = _check_inputs(source_images, source_landmarks, target_landmarks)
    return images[closest_source(points, target)].copy()


def border_anchors(height: int, width: int, per_side: int = ANCHORS_PER_SIDE) -> np.ndarray:
    """(4 * (per_side - 1), 2) points spaced evenly along the image's outer pixel edges.

    They lie half a pixel outside the outermost pixel centres, so every pixel centre is strictly
    inside their hull and thus inside some triangle.
    """
    xs = np.linspace(-0.5, width - 0.5, per_side)
    ys = np.linspace(-0.5, height - 0.5, per_side)
    top = np.stack([xs[:-1], np.full(per_side - 1, ys[0])], 1)
    right = np.stack([np.full(per_side - 1, xs[-1]), ys[:-1]], 1)
    bottom = np.stack([xs[:0:-1], np.full(per_side - 1, ys[-1])], 1)
    left = np.stack([np.full(per_side - 1, xs[0]), ys[:0:-1]], 1)
    return np.concatenate([top, right, bottom, left])


def piecewise_affine_map(
    source_points: np.ndarray, target_points: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Backward map of the piecewise-affine warp that takes ``source_points`` to ``target_points``.

    The target points are Delaunay-triangulated; an output pixel in target triangle (t0, t1, t2)
    with barycentric coordinates (b0, b1, b2) samples the source at b0 s0 + b1 s1 + b2 s2, i.e.
    the affine map of that triangle. Pixels that no triangle covers keep their position.

    Args:
        source_points: (p, 2) x, y in the source image.
        target_points: (p, 2) the same points in the output image.
        height: output height.
        width: output width.

    Returns:
        ``(map_x, map_y)``, each (height, width) float32, for ``cv2.remap``.
    """
    triangulation = Delaunay(target_points)
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)  # (h*w, 2)
    simplex = triangulation.find_simplex(pixels)  # (h*w,), -1 outside every triangle
    inside = simplex >= 0
    transform = triangulation.transform[simplex[inside]]  # (m, 3, 2): inverse matrix and origin
    partial = np.einsum("mij,mj->mi", transform[:, :2], pixels[inside] - transform[:, 2])  # (m, 2)
    barycentric = np.concatenate([partial, 1.0 - partial.sum(axis=1, keepdims=True)], axis=1)  # (m, 3)
    corners = source_points[triangulation.simplices[simplex[inside]]]  # (m, 3, 2)
    mapped = pixels.copy()
    mapped[inside] = np.einsum("mk,mkd->md", barycentric, corners)
    mapped = mapped.reshape(height, width, 2).astype(np.float32)
    return mapped[..., 0], mapped[..., 1]


def landmark_warp(source_images: np.ndarray, source_landmarks: np.ndarray, target_landmarks: np.ndarray) -> np.ndarray:
    """Piecewise-affine warp of the closest source frame onto the target landmarks.

    The closest frame is chosen as in :func:`copy_source`. The target landmarks and
    :func:`border_anchors` (which do not move) are triangulated together, and each triangle
    is warped from its place on the source landmarks to its place on the target ones
    (:func:`piecewise_affine_map`, one dense backward map sampled bilinearly by
    ``cv2.remap``). Triangles whose corners do not move map to themselves, so the background
    is kept exactly wherever nothing moves; between a moving face and the border the
    displacement falls off linearly, which moves the hair and neck with the head instead of
    tearing them at the face outline (a hard mask at the face hull would leave a seam and a
    second copy of the face outline whenever the head moves).

    Args:
        source_images: (k, h, w, 3) uint8 RGB.
        source_landmarks: (k, p, 2) pixel coordinates of each source frame.
        target_landmarks: (p, 2) pixel coordinates of the target.

    Returns:
        (h, w, 3) uint8.
    """
    images, points, target = _check_inputs(source_images, source_landmarks, target_landmarks)
    index = closest_source(points, target)
    height, width = images.shape[1:3]
    anchors = border_anchors(height, width)
    map_x, map_y = piecewise_affine_map(
        np.concatenate([points[index], anchors]), np.concatenate([target, anchors]), height, width
    )
    return cv2.remap(images[index], map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


BASELINES: dict[str, Baseline] = {"copy-source": copy_source, "landmark-warp": landmark_warp}


def get_baseline(name: str) -> Baseline:
    """The baseline registered as ``name``, or a KeyError listing the known ones."""
    try:
        return BASELINES[name]
    except KeyError:
        raise UnknownNameError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}") from None
