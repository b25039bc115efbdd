"""Live mode: animate a webcam stream frame by frame with a person encoded once.

:meth:`AnimationPipeline.animate` is a generator that pulls driving frames lazily; with a
batch of one and no smoothing it yields each frame's result before it asks for the next
frame. :class:`LiveSession` keeps one such generator running and hands it the newest webcam
frame on every call, so the tracker, the neutral frame of relative motion and the encoded
source persist across the stream. The first frame with a face is the neutral frame. Until a
face is seen the session answers None and starts over with the next frame (frames are not
held back, unlike a video, where they wait for the first detection).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from talkinghead.errors import InvalidInputError
from talkinghead.inference.driving import DrivingError
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimatedFrame, AnimationPipeline
from talkinghead.inference.views import resize_to_height


class _LatestFrame:
    """An iterator that gives each frame once; a second ask before a new frame ends the stream."""

    def __init__(self):
        self.frame: np.ndarray | None = None

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        if self.frame is None:
            raise StopIteration
        frame, self.frame = self.frame, None
        return frame


@dataclass
class LiveStats:
    """Frames animated and the server-side time per frame (landmarks + synthesis + view)."""

    frames: int = 0
    frames_without_face: int = 0
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> str:
        if not self.seconds:
            return "no frames animated yet"
        recent = self.seconds[-30:]
        mean = sum(recent) / len(recent)
        return (f"{self.frames} frames animated; {1000 * mean:.0f} ms a frame on the server "
                f"(up to {1 / mean:.1f} frames/s)")


class LiveSession:
    """One person, one webcam stream.

    Args:
        pipeline: a loaded pipeline (its source is set here, once).
        sources: the person's photos.
        size: height in pixels of the returned frames.
        motion: ``relative`` (default) or ``absolute``.
    """

    def __init__(self, pipeline: AnimationPipeline, sources: list[str | Path], *, size: int = 256,
                 motion: str = "relative"):
        if pipeline.model.temporal_radius > 0:
            # Such a model holds each frame back for its neighbours; one frame in cannot give one frame out.
            raise InvalidInputError(
                f"{pipeline.name}: this model smooths over {2 * pipeline.model.temporal_radius + 1} frames and cannot "
                "animate a live stream frame by frame; use it on a recorded driving video"
            )
        self.pipeline = pipeline
        self.pipeline.set_source(sources)
        self.size = size
        self.options = AnimateOptions(motion=motion, batch_size=1, smooth=0.0)
        self.stats = LiveStats()
        self._feed = _LatestFrame()
        self._frames = None

    def _restart(self) -> None:
        self._feed = _LatestFrame()
        self._frames = self.pipeline.animate(self._feed, self.options)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB webcam frame -> (size, size, 3) uint8 animated frame, or None (no face yet)."""
        start = time.perf_counter()
        if self._frames is None:
            self._restart()
        self._feed.frame = np.ascontiguousarray(frame[..., :3])
        try:
            animated: AnimatedFrame = next(self._frames)
        except (StopIteration, DrivingError):
            # No face at the start of the stream: nothing to show; the next frame starts over.
            self._frames = None
            self.stats.frames_without_face += 1
            return None
        self.stats.frames += 1
        if not animated.face_found:
            self.stats.frames_without_face += 1
        image = resize_to_height(animated.image, self.size)
        self.stats.seconds.append(time.perf_counter() - start)
        return image

    def close(self) -> None:
        """Stop the stream's generator and release the landmark detector."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None
        self.pipeline.close()
