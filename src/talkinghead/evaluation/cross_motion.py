"""The cross-identity motion metrics of ``evaluate --cross`` for one driven video.

The source person (its first shot) is driven by another identity's hold-out frames. The
target pose and expression of each frame come from the canonical 3-D relative motion
(:meth:`~talkinghead.inference.motion.MotionTransfer.target_pose`), which no method
changes; the result is measured by re-detecting mediapipe's 478 points on the rendered
frames (image level, :mod:`~talkinghead.evaluation.metrics.motion_transfer`).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import cv2
import numpy as np

from talkinghead.data.landmarks.canonical_frame import is_canonical_layout
from talkinghead.errors import MissingDependencyError
from talkinghead.evaluation.metrics.motion_transfer import CROSS_METRICS, HIGHER_IS_BETTER, cross_identity_metrics
from talkinghead.evaluation.test_set import TestVideo
from talkinghead.inference.motion import MotionTransfer

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    "mouth_r": "Pearson r of the result's and the driver's per-frame mouth opening",
    "mouth_amp": "mouth opening amplitude std(result)/std(driver); 1 = as much as the driver",
    "eye_r": "Pearson r of the result's and the driver's per-frame eye opening",
    "eye_amp": "eye opening amplitude std(result)/std(driver); 1 = as much as the driver",
    "pose_err": "degrees between the result's head rotation and the driver-relative target",
    "expr_err": "distance of the result's canonical expression from the target, % of the crop",
    "id_kept": "share of frames within dlib's same-person distance 0.6 of the source",
}
# Re-detect at twice the evaluation size: mediapipe misses small faces.
REDETECT_UPSCALE = 2


@lru_cache(maxsize=1)
def _landmarker():
    from talkinghead.data.landmarks.factory import create_landmarker

    return create_landmarker("mediapipe")


@lru_cache(maxsize=1)
def _dlib():
    from talkinghead.evaluation.face_embedding import DlibFaceEmbedder

    try:
        return DlibFaceEmbedder()
    except MissingDependencyError as err:  # dlib missing: id_kept is reported as missing
        log.warning("id_kept skipped: %s", err)
        return None


def metric_entries() -> dict:
    """``results["metrics"]`` entries of the cross-identity motion metrics (one value per video)."""
    return {name: {"higher_is_better": HIGHER_IS_BETTER[name], "description": DESCRIPTIONS[name], "kind": "video"}
            for name in CROSS_METRICS}


def redetect(images: np.ndarray) -> list[np.ndarray | None]:
    """Per (s, s, 3) uint8 image, its main face's (478, 3) mediapipe points in its pixels, or None."""
    out = []
    for image in images:
        big = cv2.resize(image, None, fx=REDETECT_UPSCALE, fy=REDETECT_UPSCALE, interpolation=cv2.INTER_CUBIC)
        faces = _landmarker().detect(big)
        out.append(faces[0].dense.astype(np.float64) / REDETECT_UPSCALE if faces else None)
    return out


def cross_motion(video: TestVideo, shots: np.ndarray, driver: TestVideo, outputs: np.ndarray) -> dict:
    """:data:`CROSS_METRICS` of one video driven by ``driver`` (all None without mediapipe points).

    Args:
        video: the source person's test video; ``shots[0]`` is the motion base.
        shots: (k,) the source frames.
        driver: the driving identity's video; its first input frame is the neutral frame.
        outputs: (m, s, s, 3) uint8 results, one per ``driver.targets`` frame.
    """
    base = video.dense[int(shots[0])]
    neutral_frame = driver.input_frames[0] if len(driver.input_frames) else driver.targets[0]
    neutral = driver.dense[int(neutral_frame)]
    driven = [driver.dense[int(t)] for t in driver.targets]
    if not all(is_canonical_layout(p) for p in [base, neutral, *driven]):
        return dict.fromkeys(CROSS_METRICS)
    transfer = MotionTransfer("relative", size=outputs.shape[1], source_points=base, reference_points=neutral)
    target = [transfer.target_pose(p) for p in driven]
    embedder = _dlib()
    distances = None
    if embedder is not None:
        reference = embedder.descriptors(video.images[int(shots[0])][None])[0]
        distances = np.linalg.norm(embedder.descriptors(outputs) - reference, axis=1)
    return cross_identity_metrics(redetect(outputs), driven, target, distances)
