"""The interface every landmark backend implements, and following one face through a clip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class FaceLandmarks:
    """Landmarks of one face in one image, in that image's pixel coordinates.

    Args:
        dense: (N, 3) float32 backend points: x, y in pixels and z (depth, same scale;
            zero for 2-D backends). N = 478 for mediapipe, 68 for dlib68 and fan.
        ibug68: (68, 2) float32 points in the iBUG layout.
        confidence: face detection score in [0, 1].
    """

    dense: np.ndarray
    ibug68: np.ndarray
    confidence: float

    @property
    def box(self) -> np.ndarray:
        """(4,) x0, y0, x1, y1 of the iBUG landmarks."""
        return np.concatenate([self.ibug68.min(axis=0), self.ibug68.max(axis=0)]).astype(np.float32)

    @property
    def size(self) -> float:
        """Larger side of the landmark box, in pixels."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))

    @property
    def center(self) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2], dtype=np.float32)


class LandmarkDetector(Protocol):
    """A face detector + landmark predictor.

    ``detect`` returns every face found in an RGB uint8 image, ordered by :func:`rank_faces`.
    """

    name: str
    num_dense: int

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]: ...

    def close(self) -> None: ...


def rank_faces(faces: list[FaceLandmarks]) -> list[FaceLandmarks]:
    """Faces ordered by size weighted by detection confidence, the main face first.

    Plain size is not enough: a detector's false positive in a textured background can be
    as large as the real face (seen on facerec_obama1.jpg, 0.69 vs 0.95 confidence).
    Ties are broken left to right.
    """
    return sorted(faces, key=lambda f: (-f.size * f.confidence, float(f.center[0])))


class FaceTrack:
    """Follows one face through the frames of a clip.

    In the first frame with faces, face number ``face_index`` in :func:`rank_faces` order
    (0 = the largest clear face) is chosen;
    in later frames, the face nearest to the last chosen one, so a second person
    walking into the frame does not make the track jump.
    """

    def __init__(self, face_index: int = 0):
        if face_index < 0:
            raise ValueError(f"face_index must be >= 0, got {face_index}")
        self.face_index = face_index
        self.last: FaceLandmarks | None = None

    def choose(self, faces: list[FaceLandmarks]) -> FaceLandmarks | None:
        """The tracked face among ``faces`` (in rank_faces order), or None."""
        if not faces:
            return None
        if self.last is None:
            if self.face_index >= len(faces):
                return None
            chosen = faces[self.face_index]
        else:
            centre = self.last.center
            chosen = min(faces, key=lambda f: float(np.linalg.norm(f.center - centre)))
        self.last = chosen
        return chosen
