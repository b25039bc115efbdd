"""The shipped MetaPortrait model at 256 / 512 px (issue 24): the photo's own pixels, no speckle dots, paste-back."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from talkinghead.data.video import read_video_frames
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.paste_back import face_mask
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.inference.source import ibug68_points

from conftest import DEMO_MODEL

pytest.importorskip("face_recognition_models")

# A speckle dot differs from all eight neighbours by more than this (of 255) in some channel.
SEAM_THRESHOLD = 40


def isolated_pixels(image: np.ndarray, threshold: int = SEAM_THRESHOLD) -> np.ndarray:
    """(h, w) bool: pixels of an (h, w, 3) uint8 image differing from all eight neighbours by > threshold."""
    x = image.astype(np.int32)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[:2]
    out = np.ones((h, w), dtype=bool)
    for dy, dx in itertools.product((-1, 0, 1), repeat=2):
        if dy or dx:
            out &= np.abs(x - padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]).max(axis=-1) > threshold
    return out


@pytest.fixture(scope="module")
def pipeline(real_data):
    with AnimationPipeline.from_pretrained(DEMO_MODEL, device="cpu") as pipe:
        pipe.set_source([real_data / "sadtalker_people_0.png"])
        yield pipe


@pytest.fixture(scope="module")
def open_mouth_frames(real_data):
    """The first frame (neutral) and a wide-open mouth of the driving video (frame 120)."""
    frames = itertools.islice(read_video_frames(real_data / "liveportrait_d18.mp4"), 121)
    return [rgb for i, (_, _, rgb) in enumerate(frames) if i in (0, 120)]


def test_isolated_pixels_finds_a_dot_and_only_it():
    image = np.full((16, 16, 3), 120, np.uint8)
    image[5, 7] = 250
    image[10, 2:5] = 10  # a line is no dot
    assert np.argwhere(isolated_pixels(image)).tolist() == [[5, 7]]


@pytest.mark.parametrize("size", [256, 512])
def test_frames_come_at_the_output_size_with_no_speckle_dots_in_the_face(pipeline, open_mouth_frames, size):
    pipeline.set_output_size(size)
    try:
        frames = list(pipeline.animate(iter(open_mouth_frames), AnimateOptions(overlap=False)))
    finally:
        pipeline.set_output_size(None)
    assert [f.image.shape for f in frames] == [(size, size, 3)] * 2
    opened = frames[-1]
    face = face_mask(ibug68_points(opened.landmarks) * size / pipeline.size, size, feather=0) > 0.5
    source = pipeline.source.reference.photo
    assert face.sum() > 0.1 * size * size
    dots = isolated_pixels(opened.image) & face
    # the photo's own isolated pixels (an earring's glint) are not seams: allow as many as its crop has
    from talkinghead.data.crop import crop_image

    own = isolated_pixels(crop_image(source, pipeline.source.reference.box, size)).sum()
    assert dots.sum() <= own, f"{dots.sum()} speckle dots inside the face at {np.argwhere(dots)[:5].tolist()}"


def test_output_size_keeps_the_network_size_and_falls_back_for_loaded_sources(pipeline, tmp_path):
    assert pipeline.set_output_size(256) == 256 and pipeline.size == 128
    path = pipeline.save_source(tmp_path / "person.safetensors")
    pipeline.load_source(path)
    frames = pipeline.synthesize(pipeline.model.expand_state(pipeline.source.state, 1)["source_landmarks"][:, 0])
    assert frames.shape == (1, 3, 256, 256)
    assert pipeline.set_output_size(None) == 128


def test_paste_back_of_the_source_pose_at_256_changes_little(pipeline, open_mouth_frames):
    pipeline.set_output_size(256)
    try:
        frame = next(pipeline.animate(iter(open_mouth_frames[:1]), AnimateOptions(overlap=False, paste_back=True)))
    finally:
        pipeline.set_output_size(None)
    photo = pipeline.source.reference.photo
    assert frame.pasted.shape == photo.shape
    difference = np.abs(frame.pasted.astype(int) - photo).mean()
    assert difference < 3.0, f"the neutral pose pasted back differs from the photo by {difference:.2f} on average"
