"""Build a landmark backend by its registry name (``mediapipe``, ``dlib68``, ``fan``)."""

from __future__ import annotations

import numpy as np

from talkinghead.data.landmarks.base import FaceLandmarks, LandmarkDetector, rank_faces

BACKENDS = ("mediapipe", "dlib68", "fan")


class FANDetector:
    """The papers' FAN 68-point network on BlazeFace boxes (weights via the registry)."""

    name = "fan"
    num_dense = 68

    def __init__(self, min_confidence: float = 0.5, device: str = "cpu"):
        from talkinghead.data.landmarks.fan_backend import FANLandmarker
        from talkinghead.data.landmarks.mediapipe_backend import FaceBoxDetector

        self._landmarker = FANLandmarker.from_registry(device=device)
        self.boxes = FaceBoxDetector(min_confidence)

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        faces = []
        for box, score in self.boxes.detect(image):
            pts, _fan_confidence = self._landmarker.predict(image, tuple(float(v) for v in box))
            pts = pts.astype(np.float32)
            dense = np.concatenate([pts, np.zeros((68, 1), np.float32)], axis=1)
            faces.append(FaceLandmarks(dense=dense, ibug68=pts, confidence=score))
        return rank_faces(faces)

    def close(self) -> None:
        self.boxes.close()


def create_landmarker(name: str, min_confidence: float = 0.5) -> LandmarkDetector:
    """A ready landmark backend. Raises with the fix when its package or weights are missing."""
    if name == "mediapipe":
        from talkinghead.data.landmarks.mediapipe_backend import MediapipeLandmarker

        return MediapipeLandmarker(min_confidence=min_confidence)
    if name == "dlib68":
        from talkinghead.data.landmarks.dlib_backend import Dlib68Landmarker

        return Dlib68Landmarker(min_confidence=min_confidence)
    if name == "fan":
        return FANDetector(min_confidence=min_confidence)
    raise ValueError(f"unknown landmark backend {name!r}; choose one of {', '.join(BACKENDS)}")


def num_dense_points(name: str) -> int:
    """Points per face that backend ``name`` stores as its dense landmarks."""
    return 478 if name == "mediapipe" else 68
