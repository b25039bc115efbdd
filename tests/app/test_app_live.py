"""Live mode without a browser: webcam frames one at a time give what a video run gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from talkinghead.app.jobs import AppJobRunner, AppRequest
from talkinghead.app.live import LiveSession
from talkinghead.data.video import read_video_frames
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline

REPO = Path(__file__).resolve().parents[2]
PORTRAIT = REPO / "examples" / "portraits" / "sadtalker_happy.png"


def _driving(real_data, count: int) -> list[np.ndarray]:
    frames = []
    for _, _, rgb in read_video_frames(real_data / "liveportrait_d19.mp4"):
        frames.append(rgb)
        if len(frames) == count:
            return frames
    raise AssertionError("the clip is too short")


def test_live_frames_match_a_video_run(real_data):
    frames = _driving(real_data, 5)
    with AnimationPipeline.from_pretrained("demo", device="cpu") as pipeline:
        pipeline.set_source([PORTRAIT])
        expected = [f.image for f in pipeline.animate(frames, AnimateOptions(batch_size=1))]
    live = LiveSession(AnimationPipeline.from_pretrained("demo", device="cpu"), [PORTRAIT], size=pipeline.size)
    got = [live(frame) for frame in frames]
    live.close()
    assert len(got) == len(expected) == 5
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert live.stats.frames == 5 and "5 frames animated" in live.stats.summary()


def test_frames_without_a_face_wait_for_one(real_data):
    live = LiveSession(AnimationPipeline.from_pretrained("demo", device="cpu"), [PORTRAIT], size=128)
    wall = np.full((240, 320, 3), 100, np.uint8)
    assert live(wall) is None and live(wall) is None
    face = live(_driving(real_data, 1)[0])
    assert face is not None and face.shape == (128, 128, 3)
    assert live.stats.frames == 1 and live.stats.frames_without_face == 2
    live.close()


def test_live_session_reports_bad_photos_as_a_message(tmp_path):
    runner = AppJobRunner(tmp_path / "work", device="cpu")
    blank = tmp_path / "uploads" / "wall.png"
    blank.parent.mkdir()
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    session, line = runner.live_session(AppRequest(sources=[str(blank)]))
    assert session is None and line.startswith("Could not start live mode: wall.png: no face")
    session, line = runner.live_session(AppRequest(bundled_source="sadtalker_happy.png"))
    assert session is not None and "sadtalker_happy.png" in line
    session.close()
