"""Least-squares similarity transforms between landmark sets (Umeyama 1991).

Used by relative motion transfer (``inference.motion``) and by the canonical 3-D
decomposition of mediapipe landmarks (``data.landmarks.canonical_frame``). Landmark
arrays are (N, 2) or (N, 3): x, y in pixels and an optional depth z on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A z column whose largest magnitude is below this fraction of the x, y extent is taken
# as "no depth" (2-D detectors fill it with zeros).
_FLAT_DEPTH_TOLERANCE = 1e-6
# Point sets whose RMS spread is below this (in pixels) have no usable shape.
MIN_SPREAD = 1e-9


@dataclass
class Similarity:
    """A similarity transform ``x -> scale * rotation @ x + translation``.

    Args:
        scale: positive isotropic scale factor.
        rotation: (d, d) proper rotation matrix (orthonormal, determinant +1).
        translation: (d,) translation in the target's pixels.
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (..., d) points forward: ``scale * points @ rotation.T + translation``.

        Args:
            points: (..., d) points in the source's pixels.
        """
        points = np.asarray(points, dtype=np.float64)
        return self.scale * points @ self.rotation.T + self.translation

    def inverse_apply(self, points: np.ndarray) -> np.ndarray:
        """Map (..., d) points back: the inverse of :meth:`apply`.

        Args:
            points: (..., d) points in the target's pixels.
        """
        points = np.asarray(points, dtype=np.float64)
        # The rotation is orthonormal, so its inverse is its transpose; with row
        # vectors, x @ R is R.T applied to each point.
        return (points - self.translation) @ self.rotation / self.scale


def check_points(points: np.ndarray, name: str) -> np.ndarray:
    """Return ``points`` as a float64 (N, d) array, d in {2, 3}, or raise ValueError."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise ValueError(
            f"{name} must be an (N, 2) or (N, 3) landmark array, "
            f"got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} contains NaN or infinite coordinates; "
            "drop or fill the missing landmarks first"
        )
    return array


def _rms_spread(points: np.ndarray) -> float:
    """RMS distance of (N, d) points from their centroid."""
    centred = points - points.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(centred**2, axis=1))))


def _has_flat_depth(points: np.ndarray) -> bool:
    """Whether the z column of (N, 3) points is (near) all zero, i.e. a 2-D detector."""
    extent = max(1.0, float(np.abs(points[:, :2]).max()))
    return bool(np.abs(points[:, 2]).max() <= _FLAT_DEPTH_TOLERANCE * extent)


def _umeyama(source: np.ndarray, target: np.ndarray) -> Similarity:
    """Least-squares similarity from (N, d) ``source`` onto (N, d) ``target``.

    Umeyama (1991), "Least-squares estimation of transformation parameters between two
    point patterns", eqs. 38-42. Inputs are already validated and non-degenerate.
    """
    dim = source.shape[1]
    mean_source = source.mean(axis=0)  # (d,)
    mean_target = target.mean(axis=0)  # (d,)
    centred_source = source - mean_source  # (N, d)
    centred_target = target - mean_target  # (N, d)
    covariance = centred_target.T @ centred_source / len(source)  # (d, d), eq. 38
    u, singular_values, vt = np.linalg.svd(covariance)
    # Umeyama Eq. 39: flip the weakest axis when U V^T would be a reflection, so the result is
    # always a proper rotation (det +1), the best one in the least-squares sense.
    signs = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[-1] = -1.0
    rotation = u @ np.diag(signs) @ vt  # eq. 40
    variance_source = np.mean(np.sum(centred_source**2, axis=1))
    scale = float(np.sum(singular_values * signs) / variance_source)  # eq. 42
    translation = mean_target - scale * rotation @ mean_source  # eq. 41
    return Similarity(scale=scale, rotation=rotation, translation=translation)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """Least-squares similarity transform mapping ``source`` onto ``target`` points.

    Minimises ``sum_i |target_i - (s R source_i + t)|^2`` over scale ``s > 0``, proper
    rotation ``R`` (no reflections) and translation ``t`` (Umeyama's method). When
    either input is (N, 3) with a (near) all-zero z column, as 2-D detectors give, the
    fit uses x and y only and is returned as a 3-D transform that rotates about the z
    axis and scales z by ``s``.

    Args:
        source: (N, d) points, d = 2 or 3.
        target: (N, d) corresponding points in the same order.

    Returns:
        The fitted :class:`Similarity` with a (d, d) rotation and (d,) translation.

    Raises:
        ValueError: shapes differ, fewer than 3 points, non-finite values, or either
            point set has (near) zero spread.
    """
    source = check_points(source, "source")
    target = check_points(target, "target")
    if source.shape != target.shape:
        raise ValueError(
            f"source and target must have the same shape (same landmarks, same order), "
            f"got {source.shape} and {target.shape}"
        )
    if len(source) < 3:
        raise ValueError(f"fit_similarity needs at least 3 points, got {len(source)}")
    dim = source.shape[1]
    flat_depth = dim == 3 and (_has_flat_depth(source) or _has_flat_depth(target))
    fit_dim = 2 if flat_depth else dim
    for name, points in (("source", source), ("target", target)):
        if _rms_spread(points[:, :fit_dim]) < MIN_SPREAD:
            raise ValueError(
                f"{name} points are degenerate: they all coincide, "
                "so no similarity can be fitted"
            )
    transform = _umeyama(source[:, :fit_dim], target[:, :fit_dim])
    if fit_dim == dim:
        return transform
    # Embed the planar fit in 3-D: rotation about z, depth scaled like x and y, no
    # depth shift, so the transform stays a similarity.
    rotation = np.eye(3)
    rotation[:2, :2] = transform.rotation
    translation = np.zeros(3)
    translation[:2] = transform.translation
    return Similarity(scale=transform.scale, rotation=rotation, translation=translation)


def face_scale(points: np.ndarray) -> float:
    """Size of a face: RMS distance of its x, y landmarks from their centroid.

    Args:
        points: (N, 2) or (N, 3) landmarks; z is ignored.

    Returns:
        The size in the points' pixels.
    """
    points = check_points(points, "points")
    return _rms_spread(points[:, :2])
