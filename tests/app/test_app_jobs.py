"""The app's job runner without a browser: inputs resolved, bad input answered as a message.

These need neither Gradio nor Chromium, so they run everywhere.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from talkinghead.app.jobs import BUNDLED_MODEL_LABEL, KEEP_JOBS, AppInputError, AppJobRunner, AppRequest
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.utils.bundled import bundled_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner(tmp_path) -> AppJobRunner:
    return AppJobRunner(tmp_path / "work", device="cpu", max_upload_mb=1)


def test_bundled_examples_and_model_are_offered(runner):
    assert "sadtalker_happy.png" in runner.portraits
    assert "liveportrait_d18.mp4" in runner.driving_videos
    assert runner.models[BUNDLED_MODEL_LABEL] == REPO / "models" / "demo"


def test_the_bundled_model_loads_by_name():
    pipeline = AnimationPipeline.from_pretrained("demo", device="cpu")
    assert pipeline.model.method == "metaportrait" and pipeline.size == 128
    assert bundled_model("demo") == REPO / "models" / "demo"
    assert AnimationPipeline.from_pretrained("lsr_demo", device="cpu").model.method == "lsr"


def test_missing_inputs_are_named(runner):
    answer = runner.run(AppRequest(bundled_driving="liveportrait_d18.mp4"))
    assert not answer.ok and "no source photo" in answer.error
    answer = runner.run(AppRequest(bundled_source="sadtalker_happy.png"))
    assert not answer.ok and "no driving video" in answer.error
    answer = runner.run(AppRequest(bundled_source="sadtalker_happy.png", bundled_driving="liveportrait_d18.mp4",
                                   model="nothing"))
    assert not answer.ok and "unknown model 'nothing'" in answer.error


def test_too_large_upload_is_refused_before_any_work(runner, tmp_path):
    big = tmp_path / "uploads" / "huge.mp4"
    big.parent.mkdir()
    big.write_bytes(b"\0" * (2 * 2**20))
    answer = runner.run(AppRequest(bundled_source="sadtalker_happy.png", driving=str(big)))
    assert answer.error.startswith("the driving video huge.mp4 is 2 MB, more than the 1 MB")
    assert str(big.parent) not in answer.status()  # the upload folder is not shown, only the name


def test_unreadable_video_gets_a_message(runner, tmp_path):
    broken = tmp_path / "uploads" / "broken.mp4"
    broken.parent.mkdir()
    broken.write_bytes(b"this is not a video" * 100)
    answer = runner.run(AppRequest(bundled_source="sadtalker_happy.png", driving=str(broken)))
    assert not answer.ok
    assert "broken.mp4" in answer.error and str(broken.parent) not in answer.error
    assert answer.status().startswith("Could not animate: ")


def test_video_without_a_face_gets_a_message(runner, tmp_path):
    blank = tmp_path / "blank.mp4"
    with av.open(str(blank), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 128
        stream.pix_fmt = "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((128, 128, 3), 90, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    answer = runner.run(AppRequest(bundled_source="sadtalker_happy.png", driving=str(blank)))
    assert not answer.ok and "face" in answer.error, answer.error


def test_a_job_writes_both_videos_with_every_frame(runner, real_data):
    photo = real_data / "liveportrait_s12.jpg"
    seen = []
    answer = runner.run(
        AppRequest(sources=[str(photo)], bundled_driving="liveportrait_d18.mp4", max_frames=3, output_size=64,
                   smooth=1.0, paste_back=True),
        report=lambda fraction, text: seen.append(fraction),
    )
    assert answer.ok, answer.error
    for path in (answer.result, answer.side_by_side):
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 3
    # paste-back: the result is the full photo, the side-by-side three panels of its height
    width, height = Image.open(photo).size
    assert frames[0].shape[0] in (height, height + 1)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert answer.status().startswith("Animated 3 frames")


def test_old_job_folders_are_removed(runner):
    made = [runner._new_job_dir() for _ in range(KEEP_JOBS + 2)]
    kept = sorted((runner.work_dir / "jobs").iterdir())
    assert len(kept) == KEEP_JOBS
    assert made[-1] in kept and made[0] not in kept


def test_unknown_checkpoint_is_refused_at_start(tmp_path):
    with pytest.raises(AppInputError, match="nowhere: no such checkpoint"):
        AppJobRunner(tmp_path, checkpoints=[tmp_path / "nowhere"])
