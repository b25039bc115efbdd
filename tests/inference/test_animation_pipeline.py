"""AnimationPipeline on real photos and driving frames: motion transfer, caching, streaming, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from talkinghead.data.landmarks.ibug68 import dense_to_ibug68, interocular_distance
from talkinghead.data.image_sequence import read_image
from talkinghead.data.video import read_video_frames
from talkinghead.inference.driving import DrivingError
from talkinghead.inference.motion import face_scale
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.inference.source import SourceError, prepare_source_face
from talkinghead.models.pretrained import PretrainedError
from talkinghead.weights.release import ReleaseError

from lsr_release import tiny_release

# liveportrait_d18: neutral at frame 0, mouth wide open around frame 129.
NEUTRAL, OPEN = 0, 129


@pytest.fixture(scope="module")
def pipeline(release):
    with AnimationPipeline.from_pretrained(release, device="cpu") as pipe:
        yield pipe


@pytest.fixture(scope="module")
def driving_frames(real_data):
    return [f for _, _, f in read_video_frames(real_data / "liveportrait_d18.mp4", [NEUTRAL, 43, OPEN])]


def mouth_gap(points68: np.ndarray) -> float:
    """Distance between the middle of the upper and lower inner lip (iBUG 62 and 66)."""
    return float(np.linalg.norm(points68[62, :2] - points68[66, :2]))


def test_relative_motion_keeps_source_face_size_and_follows_mouth(pipeline, portrait, driving_frames):
    source = pipeline.set_source([portrait])
    frames = list(pipeline.animate(driving_frames, AnimateOptions(motion="relative")))
    assert [f.index for f in frames] == [0, 1, 2]
    src = source.reference.ibug68
    driver = [dense_to_ibug68(pipeline.landmarker.detect(f)[0].dense) for f in driving_frames]
    for frame, drv in zip(frames, driver):
        assert frame.image.shape == (64, 64, 3) and frame.image.dtype == np.uint8
        # the face keeps the source's size (eye distance), changed only as much as the driver's
        change = interocular_distance(drv) / interocular_distance(driver[0])
        assert interocular_distance(frame.landmarks) == pytest.approx(change * interocular_distance(src), rel=0.05)
    # the driver's face is larger than the source's in its own frame: sizes really are normalised
    assert abs(face_scale(driver[0]) - face_scale(src)) > 0.2 * face_scale(src)
    # the neutral frame gives back the source's own landmarks
    np.testing.assert_allclose(frames[0].landmarks, src, atol=1e-3)

    driver_opening = (mouth_gap(driver[2]) - mouth_gap(driver[0])) / face_scale(driver[0])
    source_opening = (mouth_gap(frames[2].landmarks) - mouth_gap(src)) / face_scale(src)
    assert driver_opening > 0.15  # the driver really opens the mouth
    assert source_opening == pytest.approx(driver_opening, rel=0.15)


def test_absolute_motion_uses_driver_landmarks(pipeline, portrait, driving_frames):
    pipeline.set_source([portrait])
    frames = list(pipeline.animate(driving_frames[:2], AnimateOptions(motion="absolute")))
    from talkinghead.data.crop import points_to_crop

    face = pipeline.landmarker.detect(driving_frames[0])[0]
    expected = points_to_crop(face.ibug68, frames[0].driving_box, 64)
    np.testing.assert_allclose(frames[0].landmarks, expected, atol=0.05)


def test_cached_source_gives_identical_frames(pipeline, portrait, driving_frames, tmp_path, release):
    pipeline.set_source([portrait])
    first = [f.image for f in pipeline.animate(driving_frames)]
    path = pipeline.save_source(tmp_path / "person.safetensors")

    with AnimationPipeline.from_pretrained(release, device="cpu") as fresh:
        fresh.load_source(path)
        second = [f.image for f in fresh.animate(driving_frames)]
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b)


def test_source_from_another_model_is_refused(pipeline, portrait, tmp_path):
    pipeline.set_source([portrait])
    path = pipeline.save_source(tmp_path / "person.safetensors")
    other = AnimationPipeline.from_pretrained(tiny_release(tmp_path / "other", seed=1), device="cpu")
    with pytest.raises(SourceError, match="encoded by another model"):
        other.load_source(path)


def test_corrupt_source_file_is_named(pipeline, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(SourceError, match="bad.safetensors"):
        pipeline.load_source(bad)


def test_several_source_photos_are_averaged(pipeline, real_data):
    one = pipeline.set_source([real_data / "sadtalker_happy.png"])
    two = pipeline.set_source([real_data / "sadtalker_happy.png", real_data / "sadtalker_sad.png"])
    assert two.source_names[0].endswith("sadtalker_happy.png") and len(two.source_names) == 2
    assert not np.allclose(one.state["z_style"].numpy(), two.state["z_style"].numpy())
    # the first photo stays the reference
    assert np.array_equal(one.reference.crop, two.reference.crop)


@pytest.mark.parametrize("overlap", [False, True])
def test_frames_stream_lazily(pipeline, portrait, driving_frames, overlap):
    pipeline.set_source([portrait])
    pulled = []

    def frames():
        for i in range(40):
            pulled.append(i)
            yield driving_frames[i % len(driving_frames)]

    stream = pipeline.animate(frames(), AnimateOptions(batch_size=4, smooth=1.0, overlap=overlap))
    next(stream)
    # one batch plus the smoother's look-ahead (3 frames), never the whole input; with overlap
    # the worker thread reads at most its queue's depth (8) and the frame it holds further
    assert len(pulled) <= 4 + 3 + 1 + (8 + 1 if overlap else 0)
    assert sum(1 for _ in stream) == 39


def test_driving_frames_without_face_keep_last_landmarks(pipeline, portrait, driving_frames):
    pipeline.set_source([portrait])
    blank = np.full_like(driving_frames[0], 90)
    frames = list(pipeline.animate([blank, driving_frames[0], blank, driving_frames[1]]))
    assert len(frames) == 4
    assert [f.face_found for f in frames] == [False, True, False, True]
    assert pipeline.stats.frames_without_face == 2
    np.testing.assert_allclose(frames[0].landmarks, frames[1].landmarks)  # waited for the first face
    np.testing.assert_allclose(frames[2].landmarks, frames[1].landmarks)  # held


def test_driving_without_any_face_fails(pipeline, portrait, driving_frames):
    pipeline.set_source([portrait])
    blank = np.full_like(driving_frames[0], 90)
    with pytest.raises(DrivingError, match="no face was found in any of the 3 driving frames"):
        list(pipeline.animate([blank] * 3))


def test_source_without_face_fails_with_its_name(pipeline, tmp_path, real_data):
    import cv2

    # the top-left corner of a real photo: background only
    wall = read_image(real_data / "facerec_rose_leslie_img2.jpg")[:150, :150]
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), cv2.cvtColor(wall, cv2.COLOR_RGB2BGR))
    with pytest.raises(SourceError, match="wall.png: no face was found"):
        pipeline.set_source([path])


def test_several_faces_pick_largest_or_face_index(pipeline, real_data, caplog):
    big = read_image(real_data / "sadtalker_happy.png")  # 256 x 256
    small = read_image(real_data / "facerec_alex-lacamoire.png")
    import cv2

    small = cv2.resize(small, (180, 168))
    canvas = np.full((256, 460, 3), 200, np.uint8)
    canvas[:, :256] = big
    canvas[40:208, 270:450] = small
    with caplog.at_level(logging.WARNING):
        first = pipeline.set_source([canvas])
    assert "2 faces found" in caplog.text
    assert first.reference.box[0] < 256 / 2  # the large face on the left
    second = pipeline.set_source([canvas], face_index=1)
    assert (second.reference.box[0] + second.reference.box[2]) / 2 > 256
    with pytest.raises(SourceError, match="face 5 asked for"):
        pipeline.set_source([canvas], face_index=5)


def test_small_source_warns(pipeline, portrait, caplog):
    photo = read_image(portrait)
    with caplog.at_level(logging.WARNING):
        prepare_source_face(photo, "small.png", pipeline.landmarker, pipeline.prepare, 512)
    assert "small.png: the face crop is only" in caplog.text


def test_incompatible_or_corrupt_checkpoint(tmp_path, release):
    import json
    import shutil

    other = shutil.copytree(release, tmp_path / "changed")
    config = json.loads((other / "config.json").read_text())
    config["model"]["latent_dim"] = 64
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(PretrainedError, match="do not fit the architecture"):
        AnimationPipeline.from_pretrained(other, device="cpu")

    broken = shutil.copytree(release, tmp_path / "broken")
    weights = broken / "image_generator.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ReleaseError, match="image_generator.safetensors"):
        AnimationPipeline.from_pretrained(broken, device="cpu")

    with pytest.raises(FileNotFoundError, match="no-such-model"):
        AnimationPipeline.from_pretrained(tmp_path / "no-such-model", device="cpu")


def test_animate_needs_a_source(release, driving_frames):
    pipe = AnimationPipeline.from_pretrained(release, device="cpu")
    with pytest.raises(SourceError, match="set_source"):
        next(pipe.animate(driving_frames))
