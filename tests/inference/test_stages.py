"""Stage overlap: same frames, same order as the serial pipeline; bounded hand-over; errors surface."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from talkinghead.inference.stages import BackgroundWriter, prefetch

REPO = Path(__file__).resolve().parents[2]


def test_prefetch_keeps_order_and_stays_bounded():
    produced = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    out = []
    for item in prefetch(items(), depth=3):
        time.sleep(0.001)
        # the worker runs at most depth (+1 in its hand, +1 being handed over) items ahead
        assert len(produced) - len(out) <= 3 + 2
        out.append(item)
    assert out == list(range(50))


def test_prefetch_raises_the_workers_error_in_order():
    def items():
        yield 1
        yield 2
        raise ValueError("damaged frame 3")

    got = []
    with pytest.raises(ValueError, match="damaged frame 3"):
        for item in prefetch(items(), depth=2):
            got.append(item)
    assert got == [1, 2]


def test_closing_prefetch_stops_the_worker():
    stopped = threading.Event()

    def items():
        try:
            for i in itertools.count():
                yield i
        finally:
            stopped.set()

    stream = prefetch(items(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert stopped.wait(2.0)


class _ListWriter:
    def __init__(self, fail_at=None):
        self.path = Path("memory")
        self.frames, self.fail_at = [], fail_at

    @property
    def frames_written(self):
        return len(self.frames)

    def write(self, frame):
        if self.fail_at is not None and len(self.frames) == self.fail_at:
            raise OSError("disk full")
        time.sleep(0.001)
        self.frames.append(frame)


def test_background_writer_writes_everything_in_order():
    inner = _ListWriter()
    with BackgroundWriter(inner, depth=2) as writer:
        for i in range(30):
            writer.write(i)
    assert inner.frames == list(range(30))


def test_background_writer_reports_the_encoders_error():
    inner = _ListWriter(fail_at=3)
    with pytest.raises(OSError, match="disk full"):
        with BackgroundWriter(inner, depth=2) as writer:
            for i in range(30):
                writer.write(i)
    assert inner.frames == [0, 1, 2]


def test_overlapped_pipeline_gives_the_serial_frames(real_data):
    from talkinghead.data.video import read_video_frames
    from talkinghead.inference.options import AnimateOptions
    from talkinghead.inference.pipeline import AnimationPipeline

    frames = [f for _, _, f in itertools.islice(read_video_frames(real_data / "liveportrait_d19.mp4"), 7)]
    with AnimationPipeline.from_pretrained(REPO / "models" / "demo", device="cpu") as pipeline:
        pipeline.set_source([REPO / "examples" / "portraits" / "sadtalker_happy.png"])
        serial = list(pipeline.animate(frames, AnimateOptions(batch_size=3, overlap=False)))
        overlapped = list(pipeline.animate(frames, AnimateOptions(batch_size=3, overlap=True)))
    assert [f.index for f in overlapped] == [f.index for f in serial] == list(range(7))
    for a, b in zip(serial, overlapped):
        np.testing.assert_array_equal(a.image, b.image)
