"""The app's job runner without a browser: inputs resolved, bad input answered as a message.

These need neither Gradio nor Chromium, so they run everywhere.
"""

from __future__ import annotations

import shutil

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from talkinghead.app.jobs import KEEP_JOBS, AppInputError, AppJobRunner, AppRequest
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.utils.bundled import bundled_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner(tmp_path) -> AppJobRunner:
    return AppJobRunner(tmp_path / "work", device="cpu", max_upload_mb=1)


def test_bundled_examples_and_model_are_offered(runner):
    assert "sadtalker_happy.png" in runner.portraits
    assert "liveportrait_d18.mp4" in runner.driving_videos
    # the label comes from the release: its method and image size
    assert runner.default_model == "demo (MetaPortrait, 128 px)"
    assert runner.models[runner.default_model] == REPO / "models" / "demo"


def test_every_bundled_model_is_offered_by_name(tmp_path):
    runner = AppJobRunner(tmp_path)
    assert list(runner.models) == ["demo (MetaPortrait, 128 px)", "lsr_demo (LSR, 64 px)"]  # not models/upscale


def test_a_checkpoint_is_labelled_from_its_release(tmp_path):
    release = tmp_path / "my_release"
    shutil.copytree(REPO / "models" / "lsr_demo", release)
    runner = AppJobRunner(tmp_path / "work", checkpoints=[release])
    assert list(runner.models)[-1] == f"{release} (LSR, 64 px)"


def test_driving_videos_get_thumbnails_of_their_first_frame(runner):
    thumbnails = runner.video_thumbnails()
    assert [name for _, name in thumbnails] == list(runner.driving_videos)
    for image, _ in thumbnails:
        picture = np.asarray(Image.open(image))
        assert max(picture.shape[:2]) <= 320 and picture.std() > 10  # a real frame, not a blank


def test_source_check_shows_the_face_and_says_when_there_are_several(runner, real_data, two_people_photo):
    check = runner.check_sources(AppRequest(bundled_source="sadtalker_happy.png"))
    assert check.error is None and check.notes == []
    (photo, photo_caption), (crop, crop_caption) = check.previews
    assert photo.shape == (256, 256, 3) and crop.shape == (128, 128, 3)
    assert "face 0 of 1" in photo_caption and "128 px" in crop_caption

    # two real faces side by side (facerec_obama1.jpg's second "face" is a false detection lying on its side)
    two = str(two_people_photo)
    check = runner.check_sources(AppRequest(sources=[two]))
    assert len(check.notes) == 1 and "2 faces found" in check.notes[0] and "Face number" in check.notes[0]
    assert "--source-face-index" not in check.notes[0]
    other = runner.check_sources(AppRequest(sources=[two], face_index=1))
    assert other.error is None and "face 1 of 2" in other.previews[0][1]
    assert not np.array_equal(other.previews[1][0], check.previews[1][0])  # another face
    wrong = runner.check_sources(AppRequest(sources=[two], face_index=4))
    assert wrong.error == ("two_people.png: there is no face 4 in this photo, only 2 face(s) were found; "
                           "set **Face number** to 0 or 1")


def test_source_check_warns_of_a_small_or_turned_face(runner, real_data, tmp_path):
    photo = Image.open(real_data / "sadtalker_happy.png").convert("RGB")
    small = tmp_path / "small.png"
    photo.resize((80, 80)).save(small)
    check = runner.check_sources(AppRequest(sources=[str(small)]))
    assert check.error is None, check.error
    assert len(check.notes) == 1 and check.notes[0].startswith("small.png: the face is small")
    sideways = tmp_path / "sideways.png"
    photo.rotate(90, expand=True).save(sideways)
    check = runner.check_sources(AppRequest(sources=[str(sideways)]))
    assert len(check.notes) == 1 and "lay on its side" in check.notes[0], check.notes
    assert check.previews[1][0].shape == (128, 128, 3)


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
    assert "Errno" not in answer.error and "Invalid data found" in answer.error, answer.error
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


def test_live_mode_animates_the_chosen_face(runner, two_people_photo):
    two = two_people_photo
    session, line = runner.live_session(AppRequest(sources=[str(two)], face_index=1))
    try:
        assert session is not None, line
        reference = session.pipeline.source.reference
        assert reference.face_index == 1 and (reference.box[0] + reference.box[2]) / 2 > 256  # the right-hand face
    finally:
        session.close()
    session, line = runner.live_session(AppRequest(sources=[str(two)], face_index=4))
    assert session is None and "set **Face number** to 0 or 1" in line, line
