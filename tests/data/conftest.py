"""Fixtures for data tests: small real inputs and a dataset prepared from them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from real_inputs import REAL_DATA, REAL_VIDEOS, make_video, tiny_config

from talkinghead.data.prepare import RunOptions, prepare_dataset


@pytest.fixture(scope="session")
def real_videos(tmp_path_factory) -> Path:
    """A folder with three real talking-head videos (symlinks into ../shared/data/real)."""
    if not (REAL_DATA / "manifest.csv").is_file():
        pytest.skip(f"real test media not found at {REAL_DATA}")
    folder = tmp_path_factory.mktemp("real_videos")
    for name in REAL_VIDEOS:
        (folder / name).symlink_to(REAL_DATA / name)
    return folder


@pytest.fixture(scope="session")
def prepared_dataset(real_videos, tmp_path_factory) -> Path:
    """A 64 px dataset with 4 frames per clip prepared from three real videos."""
    out = tmp_path_factory.mktemp("prepared") / "dataset"
    summary = prepare_dataset(real_videos, out, tiny_config(), RunOptions(progress=False))
    assert summary.clips_done == len(REAL_VIDEOS), summary.format()
    return out


@pytest.fixture(scope="session")
def bad_inputs(real_videos, tmp_path_factory) -> Path:
    """A corpus mixing good clips with every kind of bad input the pipeline must survive."""
    root = tmp_path_factory.mktemp("bad_inputs")
    good = REAL_DATA / "liveportrait_d18.mp4"
    (root / "good.mp4").symlink_to(good)
    # Truncated: the index of tpsmm_driving.mp4 comes first, so a cut file still decodes partly.
    data = (REAL_DATA / "tpsmm_driving.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])
    (root / "not_a_video.mp4").write_text("this is a text file with a video extension\n")
    make_video(good, root / "grayscale.mp4", "-vf", "format=gray")
    # Tiny face: the whole 480 px frame shrunk to 40 px.
    make_video(good, root / "tiny_face.mp4", "-vf", "scale=40:40")
    # No face: a real video turned upside down and blurred beyond recognition.
    make_video(good, root / "no_face.mp4", "-vf", "boxblur=40:5")
    # Two faces: two real portraits side by side, as an image sequence (the larger one left).
    two = root / "two_faces"
    two.mkdir()
    big = cv2.resize(cv2.imread(str(REAL_DATA / "sadtalker_happy.png")), (320, 320))
    small = cv2.resize(cv2.imread(str(REAL_DATA / "liveportrait_d19.jpg")), (200, 200))
    canvas = np.zeros((320, 540, 3), np.uint8)
    canvas[:, :320] = big
    canvas[60:260, 330:530] = small
    for i in range(3):
        cv2.imwrite(str(two / f"frame{i}.png"), canvas)
    return root
