"""The driving side of animation: follow one face through a stream of frames.

Frames arrive one at a time (a long video is never held whole). Each gets the tracked
face's landmarks; a frame where the face is lost keeps the last good landmarks (a
momentary occlusion should not stop a video), and frames before the first detection
wait, in a bounded buffer, for it. How many frames were affected is counted so the
caller can report it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from talkinghead.data.landmarks.base import FaceTrack, LandmarkDetector
from talkinghead.errors import TalkingHeadError

# Frames without a face held back while waiting for the first detection.
MAX_LEADING_FRAMES_WITHOUT_FACE = 250


class DrivingError(TalkingHeadError, ValueError):
    """A driving video that cannot drive (no face at all, or not for too long at its start)."""


@dataclass
class DrivingFrame:
    """One driving frame and the tracked face's landmarks in it.

    Attributes:
        index: position in the driving stream (from 0).
        image: (H, W, 3) uint8 RGB frame.
        dense: (N, 3) float32 backend landmarks in frame pixels (held from a neighbouring
            frame when ``face_found`` is False).
        box: (4,) the landmark box x0, y0, x1, y1 in frame pixels.
        face_found: whether the face was detected in this very frame.
    """

    index: int
    image: np.ndarray
    dense: np.ndarray
    box: np.ndarray
    face_found: bool


class DrivingTracker:
    """Landmarks of one face through a frame stream.

    Args:
        landmarker: the detector (the same backend as the model's training data).
        face_index: which face to follow when several are visible (0 = the main face).
        min_confidence: detections below this score count as missing.

    Attributes:
        frames_seen: frames processed so far.
        frames_without_face: frames that kept neighbouring landmarks.
        frames_with_several_faces: frames where more than one face was visible.
        seconds_detecting: wall time spent in the landmark detector.
    """

    def __init__(self, landmarker: LandmarkDetector, *, face_index: int = 0, min_confidence: float = 0.0):
        self.landmarker = landmarker
        self.track = FaceTrack(face_index)
        self.min_confidence = min_confidence
        self.frames_seen = 0
        self.frames_without_face = 0
        self.frames_with_several_faces = 0
        self.seconds_detecting = 0.0

    def detect(self, image: np.ndarray):
        """The tracked face in one frame, or None."""
        start = time.perf_counter()
        faces = self.landmarker.detect(image)
        self.seconds_detecting += time.perf_counter() - start
        if len(faces) > 1:
            self.frames_with_several_faces += 1
        face = self.track.choose([f for f in faces if f.confidence >= self.min_confidence])
        return face

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[DrivingFrame]:
        """Yield a :class:`DrivingFrame` for every frame, in order.

        Raises:
            DrivingError: no face in the first ``MAX_LEADING_FRAMES_WITHOUT_FACE`` frames,
                or none in the whole stream.
        """
        last = None
        waiting: list[tuple[int, np.ndarray]] = []
        for image in frames:
            index = self.frames_seen
            self.frames_seen += 1
            face = self.detect(image)
            if face is None:
                self.frames_without_face += 1
                if last is None:
                    waiting.append((index, image))
                    if len(waiting) > MAX_LEADING_FRAMES_WITHOUT_FACE:
                        raise DrivingError(
                            f"no face was found in the first {len(waiting)} driving frames; the driving video must "
                            "show a face (check --face-index when several people are visible)"
                        )
                    continue
                yield DrivingFrame(index, image, last.dense, last.box, False)
                continue
            last = face
            for held_index, held_image in waiting:  # the frames before the first detection
                yield DrivingFrame(held_index, held_image, face.dense, face.box, False)
            waiting = []
            yield DrivingFrame(index, image, face.dense, face.box, True)
        if last is None:
            if self.frames_seen == 0:
                raise DrivingError("the driving input holds no frames")
            raise DrivingError(
                f"no face was found in any of the {self.frames_seen} driving frames; the driving video must show a face"
            )
