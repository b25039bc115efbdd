"""Tests of the frame readers (data.video, data.image_sequence, data.frame_source): videos, images, sequences.

Real clips come from ``../shared/data/real``; edge cases (rotation, variable frame rate,
grayscale, truncation, empty and non-media files) are made in ``tmp_path`` with the
ffmpeg binary shipped with imageio-ffmpeg, each under two seconds and tiny.

Observed behaviour these tests pin down (FFmpeg 9 CLI, PyAV 18.1):

* ``-metadata:s:v rotate=90`` no longer sets a rotation; ``-display_rotation N`` as an
  input option with ``-c copy`` writes a display matrix that PyAV reports as
  ``VideoFrame.rotation == N`` (counter-clockwise), and ``np.rot90(frame, N // 90)`` gives
  what ``ffmpeg`` itself shows.
* Cutting an MP4 whose index (``moov``) is at the end makes it unopenable: reported as
  ``"truncated"`` by probe_video. Cutting a fast-start MP4 (index first) leaves a file
  whose last packet is flagged corrupt: probe_video counts the frames before it, and
  read_video_frames yields them and then raises ``"truncated"``. (With frame threading
  FFmpeg itself drops the broken packet silently, so the reader checks the flag.)
* FFmpeg's H.264 decoder reports monochrome streams as ``yuvj420p``; a true grayscale
  pixel format needs e.g. FFV1 (``gray``), which is what the grayscale test uses.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from talkinghead.data.frame_source import open_frame_source
from talkinghead.data.image_sequence import (
    ImageSequence,
    natural_sorted,
    probe_images,
    read_image,
    read_image_frames,
)
from talkinghead.data.media_info import VideoReadError, sample_frame_indices
from talkinghead.data.video import VideoFile, probe_video, read_video_frames

from real_inputs import real_file

# ---------------------------------------------------------------------------- helpers


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped with imageio-ffmpeg, or skip."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as error:
        pytest.skip(f"imageio-ffmpeg has no ffmpeg binary: {error}")


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly, failing the test with its stderr when it fails."""
    result = subprocess.run(
        [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"ffmpeg {' '.join(args)} failed:\n{result.stderr}"


def make_test_video(path: Path, *, size: str = "64x48", rate: int = 10, frames: int = 10,
                    extra: tuple[str, ...] = ("-c:v", "libx264", "-pix_fmt", "yuv420p")) -> Path:
    """A tiny synthetic clip (ffmpeg's ``testsrc`` pattern, asymmetric so rotations show)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}", "-frames:v", str(frames),
           *extra, str(path))
    return path


def ffmpeg_rgb_frames(path: Path, width: int, height: int) -> np.ndarray:
    """All frames of ``path`` as ffmpeg itself shows them (auto-rotated), ``(F, H, W, 3)``."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path),
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return np.frombuffer(result.stdout, np.uint8).reshape(-1, height, width, 3)


def collect(iterator):
    """Drain a frame iterator; returns ``(frames, error)`` with the VideoReadError, if any."""
    frames = []
    try:
        for item in iterator:
            frames.append(item)
    except VideoReadError as error:
        return frames, error
    return frames, None


# ------------------------------------------------------------------- real videos


def test_probe_real_video_matches_manifest():
    info = probe_video(real_file("liveportrait_d12.mp4"))
    assert (info.width, info.height) == (512, 512)
    assert info.num_frames == 183
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(7.32, abs=0.01)
    assert info.rotation == 0
    assert info.has_audio is True
    assert info.is_grayscale is False
    assert len(info.timestamps) == 183
    assert np.all(np.diff(info.timestamps) > 0)


def test_probe_non_square_and_silent_videos():
    wide = probe_video(real_file("liveportrait_d9.mp4"))
    assert (wide.width, wide.height) == (512, 480)
    assert wide.num_frames == 587
    assert wide.fps == pytest.approx(30.0)
    silent = probe_video(real_file("liveportrait_d0.mp4"))
    assert silent.has_audio is False
    assert silent.num_frames == 78


def test_read_selected_frames_match_full_decode():
    path = real_file("liveportrait_d12.mp4")
    info = probe_video(path)
    everything = list(read_video_frames(path))
    assert len(everything) == info.num_frames
    assert [index for index, _, _ in everything] == list(range(info.num_frames))
    assert [time for _, time, _ in everything] == pytest.approx(info.timestamps)

    # Unsorted, repeated indices come back once each, in order.
    picked = list(read_video_frames(path, [182, 0, 50, 50]))
    assert [index for index, _, _ in picked] == [0, 50, 182]
    for index, time, rgb in picked:
        assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
        assert time == pytest.approx(info.timestamps[index])
        np.testing.assert_array_equal(rgb, everything[index][2])


def test_read_mpeg4_video_through_facade():
    source = open_frame_source(real_file("sadtalker_WDA_KatieHill_000.mp4"))
    assert isinstance(source, VideoFile)
    assert source.info.num_frames == 200
    frames = list(source.frames([0, 199]))
    assert [index for index, _, _ in frames] == [0, 199]
    assert frames[1][1] == pytest.approx(199 / 25.0)
    assert frames[0][2].shape == (512, 512, 3)


def test_request_past_the_end_raises_after_yielding(tmp_path):
    video = make_test_video(tmp_path / "short.mp4", frames=5)
    frames, error = collect(read_video_frames(video, [1, 3, 9]))
    assert [index for index, _, _ in frames] == [1, 3]
    assert error is not None and error.reason == "too_few_frames"
    assert error.frames_read == 5


def test_bad_indices_are_rejected_before_decoding(tmp_path):
    video = make_test_video(tmp_path / "short.mp4", frames=3)
    with pytest.raises(ValueError, match="negative"):
        read_video_frames(video, [-1])
    with pytest.raises(TypeError, match="not an integer"):
        read_video_frames(video, [1.5])
    assert list(read_video_frames(video, [])) == []


# ------------------------------------------------------------------- edge-case videos


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_video_comes_out_upright(tmp_path, degrees):
    plain = make_test_video(tmp_path / "plain.mp4", frames=3)
    rotated = tmp_path / f"rotated{degrees}.mp4"
    # Input option + stream copy: only the display matrix changes, not the pixels.
    ffmpeg("-display_rotation", str(degrees), "-i", str(plain), "-c", "copy", str(rotated))

    info = probe_video(rotated)
    assert info.rotation == degrees
    swapped = degrees in (90, 270)
    assert (info.width, info.height) == ((48, 64) if swapped else (64, 48))

    stored = [rgb for _, _, rgb in read_video_frames(plain)]
    upright = [rgb for _, _, rgb in read_video_frames(rotated)]
    assert upright[0].shape == (info.height, info.width, 3)
    for original, turned in zip(stored, upright):
        np.testing.assert_array_equal(turned, np.rot90(original, degrees // 90))

    # And it is what ffmpeg itself displays (not the opposite turn).
    shown = ffmpeg_rgb_frames(rotated, info.width, info.height)
    assert np.abs(shown[0].astype(int) - upright[0]).mean() < 4
    if degrees != 180:
        wrong = np.rot90(stored[0], (4 - degrees // 90) % 4)
        assert np.abs(shown[0].astype(int) - wrong).mean() > 20


def test_legacy_rotate_tag_is_not_written_by_this_ffmpeg(tmp_path):
    """Documents why the rotation fixtures use ``-display_rotation``."""
    plain = make_test_video(tmp_path / "plain.mp4", frames=2)
    tagged = tmp_path / "tagged.mp4"
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v", "rotate=90", str(tagged))
    assert probe_video(tagged).rotation in (0, 270)  # 270 on FFmpeg builds that still honour it


def test_variable_frame_rate_sampling_is_uniform_in_time(tmp_path):
    # 12 frames 25 ms apart, then 8 frames 200 ms apart (1.7 s in all).
    expected = [k * 0.025 for k in range(12)] + [0.3 + k * 0.2 for k in range(8)]
    video = tmp_path / "vfr.mp4"
    make_test_video(video, frames=20, extra=(
        "-vf", "settb=1/1000,setpts='if(lt(N,12),N*0.025,0.3+(N-12)*0.2)/TB'",
        "-fps_mode", "passthrough", "-enc_time_base", "1/1000", "-video_track_timescale", "1000",
        "-c:v", "libx264", "-pix_fmt", "yuv420p",
    ))
    info = probe_video(video)
    assert info.num_frames == 20
    assert info.timestamps == pytest.approx(expected, abs=0.002)
    assert info.fps == pytest.approx(19 / 1.7, rel=0.01)

    picked = sample_frame_indices(info.timestamps, 5)
    # Targets 0, .425, .85, 1.275, 1.7 s: one frame from the fast part, four from the slow;
    # uniform in index would have been [0, 5, 10, 14, 19].
    assert picked == [0, 13, 15, 17, 19]
    frames = list(read_video_frames(video, picked))
    assert [index for index, _, _ in frames] == picked
    assert [time for _, time, _ in frames] == pytest.approx([expected[i] for i in picked],
                                                            abs=0.002)


def test_edit_list_cut_counts_only_shown_frames(tmp_path):
    """A stream-copy cut keeps hidden packets before the cut point; they are not frames."""
    long = make_test_video(tmp_path / "long.mp4", frames=30, extra=(
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10"))
    cut = tmp_path / "cut.mp4"
    ffmpeg("-ss", "0.55", "-i", str(long), "-c", "copy", str(cut))
    info = probe_video(cut)
    frames = list(read_video_frames(cut))
    assert len(frames) == info.num_frames < 30
    assert [time for _, time, _ in frames] == pytest.approx(info.timestamps)


def test_grayscale_video_gives_three_equal_channels(tmp_path):
    video = make_test_video(tmp_path / "gray.mkv", extra=("-c:v", "ffv1", "-pix_fmt", "gray"))
    info = probe_video(video)
    assert info.is_grayscale is True
    index, _, rgb = next(iter(read_video_frames(video, [2])))
    assert index == 2 and rgb.shape == (48, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    assert rgb.std() > 10  # an actual picture, not a blank frame


def test_truncated_fast_start_mp4_yields_frames_then_raises(tmp_path):
    source = real_file("tpsmm_driving.mp4")  # its index (moov) precedes the media data
    data = source.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.6)])

    info = probe_video(truncated)
    assert 0 < info.num_frames < probe_video(source).num_frames == 169

    frames, error = collect(read_video_frames(truncated))
    assert error is not None, "a cut-off file must not end silently"
    assert error.reason == "truncated"
    assert error.path == truncated
    assert "truncated.mp4" in str(error)
    assert error.frames_read == len(frames) == info.num_frames
    assert [index for index, _, _ in frames] == list(range(len(frames)))

    # Frames before the cut are identical to those of the intact file.
    intact = dict((index, rgb) for index, _, rgb in read_video_frames(source, [0, 40]))
    for index, _, rgb in frames:
        if index in intact:
            np.testing.assert_array_equal(rgb, intact[index])

    # Asking only for frames before the break reads them without an error.
    assert [i for i, _, _ in read_video_frames(truncated, [0, 10])] == [0, 10]


def test_truncated_mp4_without_index_is_reported_as_truncated(tmp_path):
    source = real_file("liveportrait_d12.mp4")  # its index (moov) is at the end
    data = source.read_bytes()
    truncated = tmp_path / "cut_off.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoReadError) as caught:
        probe_video(truncated)
    assert caught.value.reason == "truncated"
    assert "cut_off.mp4" in str(caught.value)
    frames, error = collect(read_video_frames(truncated))
    assert frames == [] and error is not None and error.reason == "truncated"


def test_text_file_named_mp4_is_unreadable(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n" * 10)
    with pytest.raises(VideoReadError) as caught:
        probe_video(fake)
    assert caught.value.reason == "unreadable"
    assert caught.value.path == fake
    assert "fake.mp4" in str(caught.value)
    with pytest.raises(VideoReadError, match="fake.mp4"):
        next(iter(read_video_frames(fake)))


def test_missing_audio_only_and_empty_videos(tmp_path):
    with pytest.raises(VideoReadError) as caught:
        probe_video(tmp_path / "nowhere.mp4")
    assert caught.value.reason == "missing" and "nowhere.mp4" in str(caught.value)

    audio = tmp_path / "voice.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.3", "-c:a", "aac", str(audio))
    with pytest.raises(VideoReadError) as caught:
        probe_video(audio)
    assert caught.value.reason == "no_video_stream"

    # AVI keeps a video stream header even when no frame was written.
    empty = make_test_video(tmp_path / "empty.avi", frames=0, extra=("-c:v", "ffv1"))
    with pytest.raises(VideoReadError) as caught:
        probe_video(empty)
    assert caught.value.reason == "empty"

    zero_bytes = tmp_path / "zero.mp4"
    zero_bytes.write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty"):
        probe_video(zero_bytes)


# --------------------------------------------------------------------- sampling


def test_sample_frame_indices_uniform_unique_sorted():
    times = [k / 25 for k in range(101)]  # 4 s at 25 fps
    assert sample_frame_indices(times, 5) == [0, 25, 50, 75, 100]
    assert sample_frame_indices(times, 1) == [50]
    assert sample_frame_indices(times, "all") == list(range(101))
    assert sample_frame_indices(times[:3], 8) == [0, 1, 2]
    assert sample_frame_indices([], 4) == []
    # Frames bunched in time still give ``count`` distinct indices.
    bunched = [0.0, 0.001, 0.002, 0.003, 0.004, 5.0]
    picked = sample_frame_indices(bunched, 4)
    assert len(set(picked)) == 4 and picked == sorted(picked) and picked[-1] == 5
    for bad in (0, -2, 2.5, "some"):
        with pytest.raises(ValueError):
            sample_frame_indices(times, bad)
    with pytest.raises(ValueError, match="presentation order"):
        sample_frame_indices([0.0, 2.0, 1.0, 3.0], 2)


# ----------------------------------------------------------------------- images


def write_image(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb).save(path)
    return path


def small_real_frames(count: int) -> list[np.ndarray]:
    """``count`` distinct small RGB images cut from a real portrait."""
    with Image.open(real_file("sadtalker_happy.png")) as image:
        portrait = np.asarray(image.convert("RGB"))
    return [np.ascontiguousarray(portrait[8 * k: 8 * k + 40, 10:50]) for k in range(count)]


def test_image_sequence_sorts_naturally_and_reads(tmp_path):
    frames = small_real_frames(3)
    for number, rgb in zip((10, 2, 1), frames):
        write_image(tmp_path / f"frame{number}.png", rgb)
    (tmp_path / "notes.txt").write_text("ignored")

    sequence = ImageSequence.from_folder(tmp_path, fps=10)
    assert [path.name for path in sequence.paths] == ["frame1.png", "frame2.png", "frame10.png"]
    info = sequence.info
    assert (info.width, info.height, info.num_frames) == (40, 40, 3)
    assert info.timestamps == pytest.approx([0.0, 0.1, 0.2])
    assert info.duration == pytest.approx(0.3) and info.has_audio is False

    read = list(sequence.frames([2, 0]))
    assert [(index, time) for index, time, _ in read] == [(0, 0.0), (2, pytest.approx(0.2))]
    np.testing.assert_array_equal(read[0][2], frames[2])  # frame1.png
    np.testing.assert_array_equal(read[1][2], frames[0])  # frame10.png
    with pytest.raises(IndexError):
        sequence.frames([3])


def test_unreadable_image_in_sequence_raises_after_earlier_frames(tmp_path):
    good = small_real_frames(2)
    paths = [write_image(tmp_path / "a1.png", good[0]), tmp_path / "a2.png",
             write_image(tmp_path / "a3.png", good[1])]
    paths[1].write_text("not an image")
    frames, error = collect(read_image_frames(paths))
    assert [index for index, _, _ in frames] == [0]
    assert error is not None and error.reason == "unreadable"
    assert error.path == paths[1] and "a2.png" in str(error)
    assert error.frames_read == 1


def test_read_image_honours_exif_orientation(tmp_path):
    rgb = small_real_frames(1)[0][:, :30]  # (40, 30, 3): portrait-shaped
    rotated = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb).save(rotated, exif=exif, quality=95)
    upright = read_image(rotated)
    assert upright.shape == (30, 40, 3) and upright.dtype == np.uint8
    assert np.abs(upright.astype(int) - np.rot90(rgb, -1)).mean() < 6
    info = probe_images([rotated])
    assert (info.width, info.height) == (40, 30)


def test_read_image_grayscale_and_errors(tmp_path):
    gray = write_image(tmp_path / "gray.png", np.tile(np.arange(64, dtype=np.uint8), (16, 1)))
    rgb = read_image(gray)
    assert rgb.shape == (16, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    assert probe_images([gray]).is_grayscale is True

    photo = read_image(real_file("liveportrait_s12.jpg"))
    assert photo.shape == (500, 375, 3)

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(real_file("liveportrait_d8.jpg").read_bytes()[:2000])
    with pytest.raises(VideoReadError) as caught:
        read_image(broken)
    assert caught.value.reason == "unreadable" and "broken.jpg" in str(caught.value)
    with pytest.raises(VideoReadError) as caught:
        read_image(tmp_path / "absent.png")
    assert caught.value.reason == "missing"


def test_open_frame_source_for_single_image_and_list(tmp_path):
    single = open_frame_source(real_file("sadtalker_happy.png"), fps=5)
    assert single.info.num_frames == 1 and (single.info.width, single.info.height) == (256, 256)
    [(index, time, rgb)] = list(single.frames())
    assert (index, time, rgb.shape) == (0, 0.0, (256, 256, 3))

    paths = [real_file("sadtalker_happy.png"), real_file("sadtalker_sad.png")]
    listed = open_frame_source(paths, fps=5)
    assert listed.info.num_frames == 2 and listed.info.fps == 5
    assert [t for _, t, _ in listed.frames()] == [0.0, 0.2]

    copies = tmp_path / "frames"
    copies.mkdir()
    for name in ("x10.png", "x9.png"):
        shutil.copy(paths[0], copies / name)
    folder = open_frame_source(copies)
    assert [path.name for path in folder.paths] == ["x9.png", "x10.png"]

    with pytest.raises(VideoReadError) as caught:
        open_frame_source(tmp_path / "gone.mp4")
    assert caught.value.reason == "missing"
    with pytest.raises(VideoReadError, match="must hold images"):
        open_frame_source([real_file("liveportrait_d12.mp4")])


def test_natural_sorted_orders_digit_runs_numerically():
    names = ["f10.png", "f2.png", "F1.png", "f02.png", "g.png"]
    assert [p.name for p in natural_sorted(names)] == ["F1.png", "f02.png", "f2.png", "f10.png",
                                                       "g.png"]
