"""Helpers for data tests: real inputs, edge-case videos made with ffmpeg, tiny configs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from talkinghead.config import load_config

REPO = Path(__file__).resolve().parents[2]
REAL_DATA = REPO.parent / "shared" / "data" / "real"

# Three real identities, short clips.
REAL_VIDEOS = ("liveportrait_d18.mp4", "liveportrait_d19.mp4", "tpsmm_driving.mp4")


def real_file(name: str) -> Path:
    """A file of the shared real data set, or skip the test when it is not there."""
    path = REAL_DATA / name
    if not path.is_file():
        pytest.skip(f"real test data {path} is absent (expected the shared data folder next "
                    "to the repository)")
    return path


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_video(src: Path, dst: Path, *args: str, seconds: float = 1.0) -> Path:
    """Re-encode the first ``seconds`` of ``src`` with extra ffmpeg filter/options."""
    cmd = [ffmpeg(), "-y", "-loglevel", "error", "-i", str(src), "-t", str(seconds), *args,
           "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def tiny_config(**overrides):
    """The tiny preset (64 px) with few frames, for fast tests."""
    values = {"frames_per_clip": 4, "size": 64}
    values.update(overrides)
    return load_config(REPO / "configs" / "prepare" / "tiny.yaml", kind="prepare", values=values)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
