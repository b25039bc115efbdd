"""``talkinghead animate``, ``demo`` and ``export onnx`` on real photos and driving clips."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from talkinghead.cli import main
from talkinghead.data.image_sequence import read_image
from talkinghead.data.video import probe_video

from conftest import DEMO_MODEL, cut_clip


def animate(release: Path, source: Path, driving: Path, output: Path, *extra: str) -> int:
    return main([
        "animate", "--checkpoint", str(release), "--source", str(source), "--driving", str(driving),
        "--output", str(output), "--no-progress", *extra,
    ])


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders a writer may have left."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_animate_keeps_frame_count_fps_and_audio(release, portrait, driving_clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert animate(release, portrait, driving_clip, out) == 0
    info, driving = probe_video(out), probe_video(driving_clip)
    assert info.num_frames == driving.num_frames == 30
    assert info.fps == pytest.approx(driving.fps, abs=0.01)
    assert info.has_audio and (info.width, info.height) == (256, 256)  # the default --output-size
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    summary = capsys.readouterr().out
    assert "animated 30 frames" in summary and "frames/s" in summary and str(out) in summary
    assert leftovers(tmp_path) == []


def test_paste_back_has_the_photo_resolution(release, real_data, driving_clip, tmp_path):
    photo = real_data / "facerec_obama1.jpg"
    out = tmp_path / "pasted.mp4"
    assert animate(release, photo, driving_clip, out, "--paste-back", "--max-frames", "6") == 0
    h, w = read_image(photo).shape[:2]
    info = probe_video(out)
    assert (info.width, info.height) == (w, h) and info.num_frames == 6


def test_side_by_side_and_png_frames(release, portrait, driving_clip, tmp_path):
    out = tmp_path / "frames"
    assert animate(release, portrait, driving_clip, out, "--side-by-side", "--output-size", "96",
                   "--max-frames", "4") == 0
    files = sorted(f for f in out.iterdir() if not f.name.startswith("."))
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(4)]
    assert (out / ".talkinghead-output.json").is_file()  # what --overwrite may replace
    assert read_image(files[0]).shape == (96, 3 * 96, 3)


def test_saved_source_reproduces_the_frames(release, portrait, driving_clip, tmp_path):
    saved = tmp_path / "person.safetensors"
    assert animate(release, portrait, driving_clip, tmp_path / "a", "--save-source", str(saved),
                   "--max-frames", "5") == 0
    assert main(["animate", "--checkpoint", str(release), "--load-source", str(saved), "--driving",
                 str(driving_clip), "--output", str(tmp_path / "b"), "--max-frames", "5", "--no-progress"]) == 0
    for name in [f"{i:05d}.png" for i in range(5)]:
        assert np.array_equal(read_image(tmp_path / "a" / name), read_image(tmp_path / "b" / name))
    assert animate(release, portrait, driving_clip, tmp_path / "c", "--load-source", str(saved)) == 2


def test_existing_output_is_refused_and_untouched(release, portrait, driving_clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    assert animate(release, portrait, driving_clip, out) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"previous result"
    assert animate(release, portrait, driving_clip, out, "--overwrite", "--max-frames", "3") == 0
    assert probe_video(out).num_frames == 3


def test_driving_frames_without_face_are_reported(release, portrait, real_data, tmp_path, capsys):
    # frames 10-14 blacked out
    clip = cut_clip(real_data / "liveportrait_d18.mp4", tmp_path / "gap.mp4", 1.0,
                    "-vf", "drawbox=enable='between(n,10,14)':x=0:y=0:w=iw:h=ih:color=black:t=fill")
    out = tmp_path / "out.mp4"
    assert animate(release, portrait, clip, out) == 0
    assert probe_video(out).num_frames == 30
    assert "5 driving frame(s) showed no face" in capsys.readouterr().out


def test_bad_inputs_leave_no_output(release, portrait, real_data, driving_clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    # a driving video without any face: fails after the writer has started
    blank = cut_clip(real_data / "liveportrait_d18.mp4", tmp_path / "blank.mp4", 0.3,
                     "-vf", "drawbox=x=0:y=0:w=iw:h=ih:color=gray:t=fill")
    assert animate(release, portrait, blank, out) == 2
    assert "no face was found in any of the 9 driving frames" in capsys.readouterr().err
    # a source without a face
    wall = tmp_path / "wall.png"
    import cv2

    cv2.imwrite(str(wall), np.full((120, 120, 3), 128, np.uint8))
    assert animate(release, wall, driving_clip, out) == 2
    assert "wall.png: no face was found" in capsys.readouterr().err
    # unreadable files
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(2000))
    assert animate(release, portrait, broken, out) == 2
    assert "broken.mp4" in capsys.readouterr().err
    not_image = tmp_path / "photo.png"
    not_image.write_text("not an image")
    assert animate(release, not_image, driving_clip, out) == 2
    assert "photo.png" in capsys.readouterr().err
    # a corrupt checkpoint
    assert animate(tmp_path / "missing-model", portrait, driving_clip, out) == 2
    assert "missing-model" in capsys.readouterr().err
    # a neutral frame outside the clip
    assert animate(release, portrait, driving_clip, out, "--neutral-frame", "99") == 2
    assert "--neutral-frame 99" in capsys.readouterr().err
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_source_face_index_picks_another_face(release, real_data, driving_clip, tmp_path, capsys):
    import cv2

    big, small = read_image(real_data / "sadtalker_happy.png"), read_image(real_data / "facerec_alex-lacamoire.png")
    canvas = np.full((256, 460, 3), 200, np.uint8)
    canvas[:, :256] = big
    canvas[40:208, 270:450] = cv2.resize(small, (180, 168))
    photo = tmp_path / "two.png"
    cv2.imwrite(str(photo), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    first, second = tmp_path / "first", tmp_path / "second"
    assert animate(release, photo, driving_clip, first, "--max-frames", "1", "--side-by-side") == 0
    assert animate(release, photo, driving_clip, second, "--max-frames", "1", "--side-by-side",
                   "--source-face-index", "1") == 0
    # the source panel (left third) shows another face
    a, b = read_image(first / "00000.png"), read_image(second / "00000.png")
    assert np.abs(a[:, :64].astype(int) - b[:, :64].astype(int)).mean() > 20
    assert animate(release, photo, driving_clip, tmp_path / "third", "--source-face-index", "3") == 2
    assert "face 3 asked for (--source-face-index)" in capsys.readouterr().err


def test_finetune_before_animating(release, portrait, driving_clip, tmp_path, capsys):
    out = tmp_path / "tuned.mp4"
    assert animate(release, portrait, driving_clip, out, "--finetune-steps", "2", "--max-frames", "3",
                   "--device", "cpu") == 0
    text = capsys.readouterr().out
    assert "fine-tuned on 1 image(s): 2 steps" in text
    assert probe_video(out).num_frames == 3


def test_export_onnx_cli(release, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx"
    assert main(["export", "onnx", "--checkpoint", str(release), "--output", str(out)]) == 0
    assert (out / "synthesis.onnx").is_file()
    assert "max abs difference" in capsys.readouterr().out


def test_demo_runs_on_the_bundled_model(tmp_path, capsys):
    assert (DEMO_MODEL / "config.json").is_file(), "the bundled demo model is missing from models/demo"
    out = tmp_path / "demo_out"
    assert main(["demo", "--output", str(out), "--max-frames", "12", "--finetune-steps", "2", "--no-progress"]) == 0
    for name in ("result.mp4", "side_by_side.mp4"):
        assert probe_video(out / name).num_frames == 12
    assert probe_video(out / "side_by_side.mp4").width == 3 * probe_video(out / "result.mp4").width
    strip = read_image(out / "strip.png")
    assert strip.shape[0] == 2 * 256 and strip.shape[1] == 7 * 256  # the strip shows the 256 px result
    assert "result.mp4" in capsys.readouterr().out
