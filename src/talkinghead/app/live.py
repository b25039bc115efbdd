"""Live mode: animate a webcam stream frame by frame with a person encoded once.

:class:`LiveSession` keeps one :class:`~talkinghead.inference.live.StreamSession` running
and hands it the newest webcam frame on every call, so the tracker, the neutral frame of
relative motion and the encoded source persist across the stream. The page streams through
:meth:`LiveSession.stream`, a :class:`~talkinghead.inference.live.LiveAnimator` with a bounded
queue that drops late frames rather than drifting behind the webcam. The first frame with a
face is the neutral frame. Until a face is seen the session answers None and starts over
with the next frame (frames are not held back, unlike a video, where they wait for the
first detection).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from talkinghead.errors import InvalidInputError
from talkinghead.inference.live import LiveAnimator, StreamSession
from talkinghead.inference.pipeline import AnimatedFrame, AnimationPipeline
from talkinghead.inference.views import resize_to_height


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
        face_index: which face of the photos to animate (0 = the largest).
    """

    def __init__(self, pipeline: AnimationPipeline, sources: list[str | Path], *, size: int = 256,
                 motion: str = "relative", face_index: int = 0):
        if pipeline.model.temporal_radius > 0:
            # Such a model holds each frame back for its neighbours; one frame in cannot give one frame out.
            raise InvalidInputError(
                f"{pipeline.name}: this model smooths over {2 * pipeline.model.temporal_radius + 1} frames and cannot "
                "animate a live stream frame by frame; use it on a recorded driving video"
            )
        self.pipeline = pipeline
        self.pipeline.set_source(sources, face_index=face_index)
        self.pipeline.set_output_size(size)  # a warping model renders at this size; others are resized after
        self.size = size
        self.stream_session = StreamSession(pipeline, motion)
        self.stats = LiveStats()
        self.animator: LiveAnimator | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB webcam frame -> (size, size, 3) uint8 animated frame, or None (no face yet)."""
        start = time.perf_counter()
        animated: AnimatedFrame | None = self.stream_session(frame)
        if animated is None:
            self.stats.frames_without_face += 1
            return None
        self.stats.frames += 1
        if not animated.face_found:
            self.stats.frames_without_face += 1
        image = resize_to_height(animated.image, self.size)
        self.stats.seconds.append(time.perf_counter() - start)
        return image

    def stream(self, frame: np.ndarray, wait: float = 0.05) -> np.ndarray | None:
        """Hand in a webcam frame without waiting for it; the newest animated frame, or None.

        Frames go through a :class:`~talkinghead.inference.live.LiveAnimator` (one worker,
        a queue of one, frames older than half a second dropped), so a slow model shows the
        newest face instead of falling behind the webcam. Waits up to ``wait`` s for a result.
        """
        if self.animator is None:
            self.animator = LiveAnimator(self, max_queue=1, max_latency=0.5)
        self.animator.submit(frame)
        return self.animator.latest(timeout=wait)

    def summary(self) -> str:
        """The line the page shows: frames/s, latency and drops with :meth:`stream`, else server time."""
        return self.animator.stats.summary() if self.animator is not None else self.stats.summary()

    def close(self) -> None:
        """Stop the worker and the stream's generator, and release the landmark detector."""
        if self.animator is not None:
            self.animator.close()
            self.animator = None
        self.stream_session.close()
        self.pipeline.close()
