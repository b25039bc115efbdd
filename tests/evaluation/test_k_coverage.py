"""Issue 10, item 3 (and 4 for evaluate) on real media: a K that short videos cannot serve is
said, rows over different videos are marked, a K that no video can serve fails before any
compute, and a report path that is a file is refused before any compute."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from talkinghead.cli import main
from talkinghead.config import PrepareConfig
from talkinghead.data.prepare import RunOptions, prepare_dataset


def _cut(src: Path, dst: Path, seconds: float) -> Path:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(src), "-t", str(seconds),
                    "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst


@pytest.fixture(scope="module")
def uneven_test_set(tmp_path_factory, real_data) -> Path:
    """Two real people: a clip of ~5 frames (2 input frames) and one of ~25 (12 input frames)."""
    videos = tmp_path_factory.mktemp("uneven_videos")
    _cut(real_data / "liveportrait_d19.mp4", videos / "short.mp4", 0.2)
    _cut(real_data / "liveportrait_d0.mp4", videos / "long.mp4", 1.0)
    out = tmp_path_factory.mktemp("uneven") / "test_set"
    config = PrepareConfig(size=64, frames_per_clip="all", segmentation="none")
    summary = prepare_dataset(videos, out, config, RunOptions(progress=False))
    assert summary.dataset_clips == 2, summary.format()
    return out


def evaluate(test_set: Path, out: Path, *ks: str) -> int:
    return main(["evaluate", "copy-source", str(test_set), "--output", str(out), "--split", "", "--k", *ks,
                 "--metrics", "psnr", "ssim", "--targets-per-video", "2", "--no-progress"])


def test_rows_over_fewer_videos_are_counted_and_marked(uneven_test_set, tmp_path, caplog):
    out = tmp_path / "eval"
    assert evaluate(uneven_test_set, out, "1", "4") == 0
    results = json.loads((out / "results.json").read_text())
    videos = {run["k"]: run["summary"]["num_videos"] for run in results["runs"]}
    assert videos == {1: 2, 4: 1}
    assert any("K = 4: 1 of 2 videos" in w for w in results["warnings"])
    assert any("K = 4: 1 of 2 videos" in r.getMessage() for r in caplog.records)  # said on the terminal
    summary = (out / "summary.md").read_text()
    assert "## Warnings" in summary and "K = 4: 1 of 2 videos" in summary
    rows = [line for line in summary.splitlines() if line.startswith("| copy-source")]
    assert rows[0].endswith("| 2 |") and rows[1].endswith("| 1 † |")
    assert "**" not in rows[1]  # a row over other videos is never ranked best


def test_a_k_without_any_video_fails_before_compute(uneven_test_set, tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate(uneven_test_set, out, "1", "40") == 2
    err = capsys.readouterr().err
    assert "K = 40" in err and "none of the 2" in err
    assert not (out / "cache").exists() and not (out / "results.json").exists()


def test_report_path_that_is_a_file_fails_before_compute(uneven_test_set, tmp_path, capsys):
    taken = tmp_path / "report"
    taken.write_text("mine")
    assert evaluate(uneven_test_set, taken, "1") == 2
    assert "is an existing file" in capsys.readouterr().err and taken.read_text() == "mine"
    assert not (tmp_path / "report" / "cache").exists()
    # Nor may the report go into the test set.
    assert evaluate(uneven_test_set, uneven_test_set / "report", "1") == 2
    assert "inside the dataset" in capsys.readouterr().err
