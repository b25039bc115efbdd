"""Live animation: a stream of driving frames in, animated frames out, late frames dropped.

A live source (a webcam, a stream, or a video file played at its own frame rate) produces
frames at its pace whether or not the animation keeps up. :class:`LiveAnimator` keeps a
bounded queue between the two: when a new frame arrives while the queue is full, the oldest
waiting frame is dropped, and a frame that waited longer than ``max_latency`` is dropped
when its turn comes. The output therefore shows the newest face, never drifts behind the
input, and memory stays bounded. Latency (arrival to result) and frames/s are measured.

    animator = LiveAnimator(session)       # session(frame) -> image or None (no face yet)
    animator.submit(frame)                 # from the capture loop, never blocks
    image = animator.latest(timeout=0.04)  # the newest result, or None

``talkinghead animate --live`` drives it from ``--driving`` (played in real time) and writes
the newest result at every input tick; the app's live mode uses it for the webcam.
"""

from __future__ import annotations

import collections
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from talkinghead.inference.driving import DrivingError
from talkinghead.inference.options import AnimateOptions


@dataclass
class LiveAnimatorStats:
    """What a live run did.

    Attributes:
        submitted: frames handed in.
        animated: frames that gave a result.
        without_face: frames processed that gave none (no face yet).
        dropped_full: frames replaced in the queue by a newer one before their turn.
        dropped_late: frames older than ``max_latency`` when their turn came.
        latencies: seconds from arrival to result of the last results (a bounded window).
        result_times: when those results were ready (monotonic seconds), for frames/s.
    """

    submitted: int = 0
    animated: int = 0
    without_face: int = 0
    dropped_full: int = 0
    dropped_late: int = 0
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=300))
    result_times: collections.deque = field(default_factory=lambda: collections.deque(maxlen=300))

    @property
    def dropped(self) -> int:
        """Frames that were never animated because newer ones overtook them."""
        return self.dropped_full + self.dropped_late

    def frames_per_second(self) -> float:
        """Results per second over the recent window (0 before two results)."""
        if len(self.result_times) < 2:
            return 0.0
        span = self.result_times[-1] - self.result_times[0]
        return (len(self.result_times) - 1) / span if span > 0 else 0.0

    def summary(self) -> str:
        """One line: frames/s, latency median and 95th percentile, frames dropped."""
        if not self.latencies:
            return f"no frames animated yet ({self.submitted} in, {self.dropped} dropped)"
        ordered = sorted(self.latencies)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        return (f"{self.animated} frames animated at {self.frames_per_second():.1f} frames/s; latency "
                f"{1000 * statistics.median(ordered):.0f} ms median, {1000 * p95:.0f} ms p95; "
                f"{self.dropped} of {self.submitted} frames dropped to keep up")


class LiveAnimator:
    """Run ``process`` on the newest frames in a worker thread, dropping the ones it cannot keep up with.

    Args:
        process: ``process(frame) -> result or None`` (e.g. :class:`talkinghead.app.live.LiveSession`).
            Runs in one worker thread, one frame at a time, in arrival order.
        max_queue: frames that may wait (1: only the newest).
        max_latency: seconds a frame may wait before it is dropped as late.
        max_results: finished results kept until read (older unread ones are discarded).
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, process: Callable[[Any], Any], *, max_queue: int = 1, max_latency: float = 0.5,
                 max_results: int = 2, clock: Callable[[], float] = time.monotonic):
        if max_queue < 1 or max_results < 1:
            raise ValueError(f"max_queue and max_results must be >= 1, got {max_queue} and {max_results}")
        self.process = process
        self.max_queue, self.max_latency, self.clock = max_queue, max_latency, clock
        self.stats = LiveAnimatorStats()
        self._pending: collections.deque = collections.deque()
        self._results: collections.deque = collections.deque(maxlen=max_results)
        self._lock = threading.Condition()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="talkinghead-live", daemon=True)
        self._thread.start()

    def submit(self, frame: Any, timestamp: float | None = None) -> None:
        """Hand in one frame (arrival time ``timestamp``, default now); never blocks.

        Raises:
            the error ``process`` raised on an earlier frame.
        """
        with self._lock:
            self._check()
            if len(self._pending) >= self.max_queue:
                self._pending.popleft()
                self.stats.dropped_full += 1
            self._pending.append((self.clock() if timestamp is None else timestamp, frame))
            self.stats.submitted += 1
            self._lock.notify_all()

    def pending(self) -> int:
        """Frames waiting now (at most ``max_queue``)."""
        with self._lock:
            return len(self._pending)

    def latest(self, timeout: float | None = 0.0) -> Any | None:
        """The newest finished result (older unread ones are discarded), waiting up to ``timeout`` s for one."""
        with self._lock:
            if not self._results and timeout:
                self._lock.wait_for(lambda: self._results or self._error is not None or self._closed, timeout)
            self._check()
            if not self._results:
                return None
            result = self._results[-1]
            self._results.clear()
            return result

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no frame waits and the worker is not busy (for the end of a stream)."""
        with self._lock:
            return self._lock.wait_for(lambda: (not self._pending and not self._busy) or self._error is not None,
                                       timeout)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    _busy = False

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                arrived, frame = self._pending.popleft()
                if self.clock() - arrived > self.max_latency:
                    self.stats.dropped_late += 1
                    self._lock.notify_all()
                    continue
                self._busy = True
            try:
                result = self.process(frame)
            except BaseException as error:  # raised again by the next submit / latest
                with self._lock:
                    self._error, self._busy = error, False
                    self._lock.notify_all()
                return
            with self._lock:
                self._busy = False
                now = self.clock()
                if result is None:
                    self.stats.without_face += 1
                else:
                    self.stats.animated += 1
                    self.stats.latencies.append(now - arrived)
                    self.stats.result_times.append(now)
                    self._results.append(result)
                self._lock.notify_all()

    def close(self) -> None:
        """Stop the worker (after the frame it is processing); waiting frames are discarded."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._lock.notify_all()
        self._thread.join()

    def __enter__(self) -> "LiveAnimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def play_in_real_time(frames, fps: float, clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep):
    """Yield ``(arrival time, frame)`` with frame i not before ``start + i / fps``, as a camera delivers them.

    When the consumer is late, frames are yielded at once with their scheduled arrival
    time (a camera does not wait), so lateness shows up as latency and drops downstream.
    """
    start = clock()
    for index, frame in enumerate(frames):
        due = start + index / fps
        delay = due - clock()
        if delay > 0:
            sleep(delay)
        yield due, np.ascontiguousarray(frame)


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


class StreamSession:
    """Animate a stream frame by frame with a person encoded once (the pipeline's source).

    :meth:`AnimationPipeline.animate` is a generator that pulls driving frames lazily; with a
    batch of one, no smoothing and no read-ahead it yields each frame's result before it asks
    for the next frame. The session keeps one such generator running and hands it each new
    frame, so the tracker and the neutral frame of relative motion persist across the stream.
    The first frame with a face is the neutral frame; until a face is seen a frame gives None
    and the next one starts over.

    Args:
        pipeline: a pipeline whose source is set.
        motion: ``relative`` (default) or ``absolute``.
    """

    def __init__(self, pipeline, motion: str = "relative"):
        self.pipeline = pipeline
        self.options = AnimateOptions(motion=motion, batch_size=1, smooth=0.0, overlap=False)
        self._feed = _LatestFrame()
        self._frames = None

    def __call__(self, frame: np.ndarray):
        """(H, W, 3) uint8 RGB frame -> its :class:`~talkinghead.inference.pipeline.AnimatedFrame`, or None (no face yet)."""
        if self._frames is None:
            self._feed = _LatestFrame()
            self._frames = self.pipeline.animate(self._feed, self.options)
        self._feed.frame = np.ascontiguousarray(frame[..., :3])
        try:
            return next(self._frames)
        except (StopIteration, DrivingError):
            # No face at the start of the stream: nothing to show; the next frame starts over.
            self._frames = None
            return None

    def close(self) -> None:
        """Stop the stream's generator."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None
