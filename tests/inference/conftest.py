"""Fixtures of the animation tests: a tiny LSR release and short real driving clips."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lsr_release import tiny_release

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DEMO_MODEL = REPO / "models" / "demo"


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def cut_clip(src: Path, dst: Path, seconds: float, *filters: str) -> Path:
    """The first ``seconds`` of a real clip, re-encoded with its audio (AAC)."""
    cmd = [ffmpeg(), "-y", "-loglevel", "error", "-i", str(src), "-t", str(seconds), *filters,
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> Path:
    return tiny_release(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def driving_clip(tmp_path_factory, real_data) -> Path:
    """One second (30 frames) of a real driving video, with its audio track."""
    out = tmp_path_factory.mktemp("driving") / "d18_1s.mp4"
    return cut_clip(real_data / "liveportrait_d18.mp4", out, 1.0)


@pytest.fixture(scope="session")
def portrait(real_data) -> Path:
    return real_data / "sadtalker_happy.png"
