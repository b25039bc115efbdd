"""Stage overlap for animation: the work before and after synthesis runs in its own thread.

Synthesis of frame t (PyTorch or onnxruntime, which release the GIL) overlaps with the
decoding, landmark detection, motion transfer and rasterising of the frames after it
(:func:`prefetch`), and with the H.264 encoding of the frames before it
(:class:`BackgroundWriter`). Both hand items over through bounded queues, so memory does
not grow with the video, and both keep the order: the frames that come out are the
frames, in the order, that the serial pipeline gives.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

_DONE = object()


class _Failure:
    """An exception raised in the worker, carried to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable[T], depth: int = 8, *, name: str = "talkinghead-prefetch") -> Iterator[T]:
    """Iterate ``items`` in a worker thread, up to ``depth`` items ahead of the consumer.

    The items come out in their order; an exception of the worker is raised in the
    consumer at the point where the serial iteration would have raised it. Closing the
    returned generator (or dropping it) stops the worker after its current item.

    Args:
        items: any iterable (e.g. a generator that decodes and detects).
        depth: the bound of the hand-over queue (memory: ``depth`` items).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    handover: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handover.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_Failure(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = handover.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


class BackgroundWriter:
    """A frame writer whose ``write`` hands the frame to a thread that encodes it.

    Wraps any :class:`~talkinghead.inference.writers.FrameWriter`; at most ``depth`` frames
    wait. An error of the writer is raised by the next ``write`` (or at the end). Use it as
    a context manager inside the wrapped writer's own block: leaving it waits until every
    frame is written (or, when the block raised, drops what still waits).

    Args:
        writer: the writer that encodes.
        depth: frames that may wait for the encoder.
        transform: applied in the thread before writing (e.g. a view that resizes).
    """

    def __init__(self, writer: Any, depth: int = 8, transform: Callable[[Any], np.ndarray] | None = None):
        self.writer = writer
        self.path = writer.path
        self.transform = transform
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="talkinghead-encode", daemon=True)
        self._thread.start()

    @property
    def frames_written(self) -> int:
        """Frames the wrapped writer has encoded so far."""
        return self.writer.frames_written

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain without writing after a failure
            try:
                self.writer.write(self.transform(item) if self.transform is not None else item)
            except BaseException as error:  # raised again in the caller's thread
                self._error = error

    def _raise(self) -> None:
        if self._error is not None:  # sticky: every later call raises it too
            raise self._error

    def write(self, frame: Any) -> None:
        """Queue one frame (blocks while ``depth`` frames wait); raises an earlier write's error."""
        self._raise()
        self._queue.put(frame)

    def finish(self) -> None:
        """Wait until every queued frame is written; raise the writer's error, if any."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        self._raise()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._error = self._error or exc  # the worker drops what is left
        try:
            self.finish()
        except BaseException:
            if exc_type is None:
                raise
