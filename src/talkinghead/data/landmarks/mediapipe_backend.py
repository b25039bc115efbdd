"""mediapipe backend: BlazeFace detection + 478-point face mesh with irises (offline).

Each detected face is cropped (with margin) and meshed on its own, so the mesh and the
detection score belong to the same face and small faces are meshed at a useful scale.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from talkinghead.data.landmarks.base import FaceLandmarks, rank_faces
from talkinghead.data.landmarks.ibug68 import dense_to_ibug68
from talkinghead.errors import MissingDependencyError
from talkinghead.utils.native_logs import native_logs_wanted, quiet_native_logs

# mediapipe logs through absl/glog to stderr; keep a prepare run's terminal readable
# (shown with -v). Lines printed before absl's logging starts are caught by quiet_native_logs.
if not native_logs_wanted():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _wait_until_idle(model) -> None:
    """Wait until ``model``'s graph has no work left (a closed or half-built model has none)."""
    graph = getattr(model, "_graph", None)  # mediapipe's SolutionBase keeps its CalculatorGraph there
    if graph is not None:
        graph.wait_until_idle()


@contextmanager
def quiet_until_idle(models: list) -> Iterator[list]:
    """:func:`quiet_native_logs` until every mediapipe solution in ``models`` has gone idle.

    A solution's calculators open in the graph's own threads after its constructor returns, and
    its first ``process`` queues work there too: their log lines (``W0000 ...
    inference_feedback_manager.cc``) come 10-60 ms later. Leaving the quiet block before, as a
    Ctrl-C does at once, let them print over the interrupt message. Models built inside the
    block are appended to ``models`` (the list is yielded) so that they are waited for too.
    """
    with quiet_native_logs():
        try:
            yield models
        finally:
            for model in models:
                _wait_until_idle(model)


def run_graph(model, image: np.ndarray, warmed: set[int]):
    """``model.process(image)``; its first run (when TFLite prints its start-up lines) silenced."""
    if id(model) in warmed:
        return model.process(image)
    with quiet_until_idle([model]):
        result = model.process(image)
    warmed.add(id(model))
    return result


def _import_mediapipe():
    try:
        import mediapipe as mp
    except ImportError as err:  # pragma: no cover - mediapipe is a core dependency
        raise MissingDependencyError(
            "the mediapipe landmark backend needs `mediapipe==0.10.21` (pip install -e .)"
        ) from err
    return mp


class FaceBoxDetector:
    """BlazeFace boxes with scores: the short-range model, then the full-range one."""

    def __init__(self, min_confidence: float = 0.5):
        mp = _import_mediapipe()
        self.min_confidence = min_confidence
        self._warmed: set[int] = set()
        with quiet_until_idle([]) as self._models:
            for selection in (0, 1):
                self._models.append(mp.solutions.face_detection.FaceDetection(
                    model_selection=selection, min_detection_confidence=min_confidence))

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """[(box (4,) x0,y0,x1,y1 in pixels, score)] for an RGB uint8 image."""
        h, w = image.shape[:2]
        for model in self._models:
            result = run_graph(model, image, self._warmed)
            if result.detections:
                boxes = []
                for det in result.detections:
                    rel = det.location_data.relative_bounding_box
                    box = np.array(
                        [rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h],
                        dtype=np.float32,
                    )
                    boxes.append((box, float(det.score[0])))
                return boxes
        return []

    def close(self) -> None:
        for model in self._models:
            model.close()


def square_region(box: np.ndarray, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer square around ``box`` enlarged by ``scale``, clipped to the image."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * scale / 2
    x0, y0 = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
    x1, y1 = int(min(width, np.ceil(cx + half))), int(min(height, np.ceil(cy + half)))
    return x0, y0, x1, y1


class MediapipeLandmarker:
    """478 dense 3-D points (468 mesh + 10 iris) per face, mapped to iBUG-68 as well."""

    name = "mediapipe"
    num_dense = 478

    def __init__(self, min_confidence: float = 0.5, max_faces: int = 4):
        mp = _import_mediapipe()
        self.boxes = FaceBoxDetector(min_confidence)
        self.max_faces = max_faces
        self._warmed: set[int] = set()
        with quiet_until_idle([]) as built:
            built.append(mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
            ))
        self._mesh = built[0]

    def _mesh_region(self, image: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray | None:
        x0, y0, x1, y1 = region
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            return None
        result = run_graph(self._mesh, crop, self._warmed)
        if not result.multi_face_landmarks:
            return None
        pts = result.multi_face_landmarks[0].landmark
        cw, ch = crop.shape[1], crop.shape[0]
        # (478, 3): x, y to image pixels; z is relative to the crop width in mediapipe.
        dense = np.array([[p.x * cw + x0, p.y * ch + y0, p.z * cw] for p in pts], dtype=np.float32)
        return dense

    def detect(self, image: np.ndarray) -> list[FaceLandmarks]:
        h, w = image.shape[:2]
        faces = []
        for box, score in sorted(self.boxes.detect(image), key=lambda b: -(b[0][2] - b[0][0]))[: self.max_faces]:
            dense = self._mesh_region(image, square_region(box, 2.0, w, h))
            if dense is None:
                continue
            faces.append(FaceLandmarks(dense=dense, ibug68=dense_to_ibug68(dense), confidence=score))
        return rank_faces(faces)

    def close(self) -> None:
        self.boxes.close()
        self._mesh.close()
