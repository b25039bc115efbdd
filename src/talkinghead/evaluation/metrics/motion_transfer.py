"""Cross-identity motion metrics: does the result move like the driver, in its own face?

All of them work on per-frame series of one driven clip, so they are plain functions:

- ``mouth_r`` / ``eye_r``: Pearson r between the result's and the driver's per-frame mouth
  (eye) opening ratios (``data.landmarks.openings``); 1 = follows it in time.
- ``mouth_amp`` / ``eye_amp``: amplitude ratio std(result) / std(driver) of the same series;
  1 = opens as much as the driver, 0 = frozen.
- ``pose_err``: mean angle in degrees between the result's head rotation (canonical 3-D
  decomposition) and the driver-relative target rotation ``R_s R_d0^T R_di`` (APD-style).
- ``expr_err``: mean distance of the result's canonical expression ``delta`` from the target
  ``delta_s + delta_di - delta_d0`` over the non-rigid points, in percent of the canonical
  head crop (AED-style).
- ``id_kept``: share of frames whose dlib descriptor is within dlib's same-person distance
  0.6 of the source's (ID-SIM near 0.96 for any warp says little; this counts failures).
"""

from __future__ import annotations

import numpy as np

from talkinghead.data.landmarks.canonical_frame import (
    RIGID_POINTS,
    CanonicalPose,
    decompose,
    rotation_angle,
)
from talkinghead.data.landmarks.openings import eye_opening, mouth_opening

CROSS_METRICS = ("mouth_r", "mouth_amp", "eye_r", "eye_amp", "pose_err", "expr_err", "id_kept")
HIGHER_IS_BETTER = {"mouth_r": True, "mouth_amp": None, "eye_r": True, "eye_amp": None,
                    "pose_err": False, "expr_err": False, "id_kept": True}
# dlib's documented same-person threshold on the Euclidean distance of its descriptors
DLIB_SAME_PERSON = 0.6


def _finite_pairs(result: np.ndarray, driver: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    result, driver = np.asarray(result, dtype=np.float64), np.asarray(driver, dtype=np.float64)
    if result.shape != driver.shape or result.ndim != 1:
        raise ValueError(f"series must be 1-D and of one length, got {result.shape} and {driver.shape}")
    keep = np.isfinite(result) & np.isfinite(driver)
    return result[keep], driver[keep]


def pearson_r(result: np.ndarray, driver: np.ndarray) -> float | None:
    """Pearson correlation of two (t,) series (frames with NaN dropped); 0 for a constant result,
    None when the driver does not vary or fewer than 3 frames remain."""
    result, driver = _finite_pairs(result, driver)
    if len(result) < 3 or driver.std() == 0:
        return None
    if result.std() <= 1e-12 * max(1.0, float(np.abs(result).max())):  # constant up to rounding
        return 0.0
    return float(np.corrcoef(result, driver)[0, 1])


def amplitude_ratio(result: np.ndarray, driver: np.ndarray) -> float | None:
    """std(result) / std(driver) of two (t,) series; None when the driver does not vary."""
    result, driver = _finite_pairs(result, driver)
    if len(result) < 2 or driver.std() == 0:
        return None
    return float(result.std() / driver.std())


def pose_error(result: list[CanonicalPose | None], target: list[CanonicalPose]) -> float | None:
    """Mean angle in degrees between result and target head rotations (frames without a result skipped)."""
    angles = [rotation_angle(r.rotation, t.rotation) for r, t in zip(result, target) if r is not None]
    return float(np.mean(angles)) if angles else None


def expression_error(result: list[CanonicalPose | None], target: list[CanonicalPose]) -> float | None:
    """Mean per-point distance of canonical ``delta`` from the target's over the non-rigid points,
    in percent of the canonical crop side."""
    moving = np.setdiff1d(np.arange(478), RIGID_POINTS)
    errors = [np.linalg.norm(r.delta[moving] - t.delta[moving], axis=1).mean()
              for r, t in zip(result, target) if r is not None]
    return float(100 * np.mean(errors)) if errors else None


def identity_kept(distances: np.ndarray) -> float | None:
    """Share of frames whose descriptor distance to the source is under 0.6 (NaN, no face: not kept)."""
    distances = np.asarray(distances, dtype=np.float64)
    if distances.size == 0:
        return None
    return float(np.mean(np.nan_to_num(distances, nan=np.inf) < DLIB_SAME_PERSON))


def cross_identity_metrics(result_points: list[np.ndarray | None], driver_points: list[np.ndarray],
                           target: list[CanonicalPose], id_distances: np.ndarray | None = None) -> dict:
    """All seven metrics of one driven clip.

    Args:
        result_points: per frame, the result's (478, 3) landmarks (the target landmarks for the
            landmark-level figures, the re-detected ones for the image-level figures), or None
            where no face was found.
        driver_points: per frame, the driver's (478, 3) landmarks.
        target: per frame, the driver-relative target pose and expression
            (``MotionTransfer.target_pose`` at expression scale 1, no retargeting).
        id_distances: (t,) dlib descriptor distances of the result to the source, or None.

    Returns:
        ``{name: value}`` for :data:`CROSS_METRICS` (None where it cannot be computed).
    """
    found = [np.asarray(p, dtype=np.float64) if p is not None else None for p in result_points]

    def series(measure, points) -> np.ndarray:
        return np.array([float(measure(p)) if p is not None else np.nan for p in points])

    driven = [np.asarray(p, dtype=np.float64) for p in driver_points]
    mouth_result, mouth_driver = series(mouth_opening, found), series(mouth_opening, driven)
    eye_result, eye_driver = series(eye_opening, found), series(eye_opening, driven)
    poses = [decompose(p) if p is not None else None for p in found]
    return {
        "mouth_r": pearson_r(mouth_result, mouth_driver),
        "mouth_amp": amplitude_ratio(mouth_result, mouth_driver),
        "eye_r": pearson_r(eye_result, eye_driver),
        "eye_amp": amplitude_ratio(eye_result, eye_driver),
        "pose_err": pose_error(poses, target),
        "expr_err": expression_error(poses, target),
        "id_kept": identity_kept(id_distances) if id_distances is not None else None,
    }
