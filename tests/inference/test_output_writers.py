"""Output writers: H.264 video with the driving audio, PNG folders, atomic replacement."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from talkinghead.data.video import probe_video, read_video_frames
from talkinghead.inference.writers import (
    FrameWriter,
    OutputExistsError,
    PNGSequenceWriter,
    VideoWriter,
    open_writer,
)

CLIP = "liveportrait_d18.mp4"  # 480x480, 30 fps, 216 frames, AAC audio


def ffmpeg() -> str:
    """The ffmpeg binary bundled with imageio-ffmpeg, for making edge-case inputs."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="module")
def clip(real_data) -> Path:
    """The real driving clip (skips when the shared data lacks it)."""
    path = real_data / CLIP
    if not path.is_file():
        pytest.skip(f"real test clip {path} is absent")
    return path


@pytest.fixture(scope="module")
def frames(clip) -> list[np.ndarray]:
    """The clip's first 30 frames (1 s), decoded once for the whole module."""
    return [rgb for _, _, rgb in read_video_frames(clip, range(30))]


@pytest.fixture(scope="module")
def small_frames(frames) -> list[np.ndarray]:
    """10 frames cropped to 63x65 (WxH) around the face, to keep encodes cheap."""
    return [np.ascontiguousarray(rgb[200:265, 200:263]) for rgb in frames[:10]]


def write_all(writer: FrameWriter, frames: list[np.ndarray]) -> Path:
    """Write ``frames`` and close the writer."""
    with writer:
        for rgb in frames:
            writer.write(rgb)
    return writer.path


def audio_of(path: Path) -> tuple[str, float, list[bytes]]:
    """(codec, end time in s, payload of the first 5 packets) of the first audio track."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.pts is not None]
        end = max((p.pts + p.duration) * p.time_base for p in packets)
        return stream.codec_context.name, float(end), [bytes(p) for p in packets[:5]]


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders the writers may have left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_video_keeps_fps_and_copies_audio_cut_to_the_video(tmp_path, clip, frames):
    out = write_all(VideoWriter(tmp_path / "out.mp4", 30.0, audio_from=clip), frames)

    info = probe_video(out)
    assert (info.num_frames, info.width, info.height) == (30, 480, 480)
    assert info.fps == pytest.approx(30.0, abs=0.01)
    assert info.has_audio
    codec, end, payload = audio_of(out)
    assert codec == "aac"
    assert end == pytest.approx(1.0, abs=0.05)  # the clip's audio runs 7.2 s
    assert payload == audio_of(clip)[2]  # copied, not re-encoded
    decoded = [rgb for _, _, rgb in read_video_frames(out)]
    diff = np.mean(
        [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(frames, decoded)]
    )
    assert diff < 4
    assert leftovers(tmp_path) == []


def test_video_without_audio_source_is_silent(tmp_path, small_frames):
    out = write_all(VideoWriter(tmp_path / "silent.mp4", 30.0), small_frames)
    assert not probe_video(out).has_audio


def test_audio_source_without_audio_gives_a_silent_video(tmp_path, clip, small_frames):
    mute = tmp_path / "mute.mp4"
    cmd = [ffmpeg(), "-y", "-loglevel", "error", "-i", str(clip), "-t", "0.5", "-an"]
    subprocess.run([*cmd, "-c:v", "copy", str(mute)], check=True)
    out = write_all(
        VideoWriter(tmp_path / "out.mp4", 30.0, audio_from=mute), small_frames
    )
    assert not probe_video(out).has_audio
    assert leftovers(tmp_path) == []


def test_audio_that_cannot_go_in_mp4_is_transcoded_to_aac(tmp_path, clip, small_frames):
    pcm = tmp_path / "pcm.mkv"
    cmd = [ffmpeg(), "-y", "-loglevel", "error", "-i", str(clip), "-t", "1"]
    subprocess.run([*cmd, "-c:v", "copy", "-c:a", "pcm_s16le", str(pcm)], check=True)
    out = write_all(
        VideoWriter(tmp_path / "out.mp4", 30.0, audio_from=pcm), small_frames
    )

    assert probe_video(out).num_frames == 10
    codec, end, _ = audio_of(out)
    assert codec == "aac"
    assert end == pytest.approx(10 / 30, abs=0.05)


def beep_onset(path: Path) -> float:
    """Time (s) of the first audible sample of ``path``'s AAC track."""
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples = frame.to_ndarray()[
                0
            ]  # AAC decodes to planar float: (channels, n)
            loud = np.nonzero(np.abs(samples) > 0.05)[0]
            if len(loud):
                return float(frame.time + loud[0] / frame.sample_rate)
    raise AssertionError(f"{path}: no audible sample")


@pytest.mark.parametrize("audio_codec", ["aac", "pcm_s16le"])
def test_audio_stays_in_sync_with_a_late_starting_video(tmp_path, audio_codec):
    # Video starts at 0.5 s and the beep at 1.0 s, so it sounds 0.5 s into the video.
    source = tmp_path / "late.mkv"
    beep = "aevalsrc='if(between(t,1,1.1),sin(2*PI*440*t),0)':s=48000:d=2"
    cmd = [ffmpeg(), "-y", "-loglevel", "error", "-itsoffset", "0.5", "-f", "lavfi"]
    cmd += ["-i", "testsrc=size=32x32:rate=30:duration=1.5", "-f", "lavfi", "-i", beep]
    subprocess.run(
        [*cmd, "-c:v", "libx264", "-c:a", audio_codec, str(source)], check=True
    )
    frames = [np.zeros((32, 32, 3), np.uint8)] * 45
    out = write_all(VideoWriter(tmp_path / "out.mp4", 30.0, audio_from=source), frames)
    assert audio_of(out)[0] == "aac"
    assert beep_onset(out) == pytest.approx(0.5, abs=0.01)


def test_max_duration_sets_where_the_audio_ends(tmp_path, clip, small_frames):
    writer = VideoWriter(tmp_path / "out.mp4", 30.0, audio_from=clip, max_duration=0.2)
    _, end, _ = audio_of(write_all(writer, small_frames))
    assert end == pytest.approx(0.2, abs=0.05)


@pytest.mark.parametrize("fps", [29.97, 30000 / 1001, 12.5])
def test_fractional_frame_rates_are_kept(tmp_path, small_frames, fps):
    info = probe_video(write_all(VideoWriter(tmp_path / "out.mp4", fps), small_frames))
    assert info.fps == pytest.approx(fps, abs=0.01)
    assert info.timestamps[-1] == pytest.approx(9 / fps, abs=1e-3)


def test_odd_sizes_are_padded_to_even_by_repeating_the_edge(tmp_path, small_frames):
    out = write_all(VideoWriter(tmp_path / "odd.mp4", 30.0, crf=0), small_frames)
    info = probe_video(out)
    assert (info.width, info.height) == (64, 66)
    _, _, first = next(iter(read_video_frames(out, [0])))
    source = small_frames[0].astype(np.int16)
    assert np.abs(first[:65, :63] - source).mean() < 4
    assert np.abs(first[65, :63] - source[64]).mean() < 6  # repeated last row


def test_a_frame_of_another_size_is_refused(tmp_path, frames, small_frames):
    writer = VideoWriter(tmp_path / "out.mp4", 30.0)
    writer.write(small_frames[0])
    with pytest.raises(ValueError, match="same size"):
        writer.write(frames[0])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "frame", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8)]
)
def test_frames_that_are_not_uint8_rgb_are_refused(tmp_path, frame):
    with pytest.raises(ValueError, match="uint8 RGB"):
        VideoWriter(tmp_path / "out.mp4", 30.0).write(frame)


def test_existing_video_is_refused_and_left_unchanged(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        VideoWriter(out, 30.0)
    assert out.read_bytes() == b"previous result"


def test_overwrite_replaces_the_old_video_only_on_close(tmp_path, small_frames):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    writer = VideoWriter(out, 30.0, overwrite=True)
    for rgb in small_frames:
        writer.write(rgb)
    assert out.read_bytes() == b"previous result"
    assert writer.close() == out
    assert probe_video(out).num_frames == 10
    assert leftovers(tmp_path) == []


def test_an_exception_while_writing_leaves_nothing_behind(tmp_path, clip, small_frames):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="model failed"):
        with VideoWriter(out, 30.0, audio_from=clip, overwrite=True) as writer:
            writer.write(small_frames[0])
            raise RuntimeError("model failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    assert out.read_bytes() == b"previous result"


def test_a_failure_while_adding_audio_aborts(tmp_path, small_frames):
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"not audio at all")
    writer = VideoWriter(tmp_path / "out.mp4", 30.0, audio_from=bogus)
    for rgb in small_frames:
        writer.write(rgb)
    with pytest.raises(ValueError, match="cannot read it to copy its audio"):
        writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.wav"]


def test_closing_without_frames_saves_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames were written"):
        with VideoWriter(tmp_path / "sub" / "out.mp4", 30.0):
            pass
    assert list((tmp_path / "sub").iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "out.avi"}, r"\.mp4, \.mov, \.mkv"),
        ({"fps": 0.0}, "positive"),
        ({"fps": float("nan")}, "positive"),
        ({"crf": 60}, "crf"),
        ({"max_duration": 0.0}, "max_duration"),
    ],
)
def test_bad_video_options_are_refused_before_any_work(tmp_path, kwargs, message):
    args = {"path": "out.mp4", "fps": 30.0, **kwargs}
    path = tmp_path / args.pop("path")
    with pytest.raises(ValueError, match=message):
        VideoWriter(path, args.pop("fps"), **args)
    assert list(tmp_path.iterdir()) == []


def test_png_frames_round_trip_exactly_and_appear_at_once(tmp_path, small_frames):
    folder = tmp_path / "frames"
    writer = PNGSequenceWriter(folder)
    for rgb in small_frames[:3]:
        writer.write(rgb)
    assert not folder.exists()  # still under a hidden temporary name
    assert writer.close() == folder
    assert sorted(p.name for p in folder.iterdir()) == [
        ".talkinghead-output.json",
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    for index, rgb in enumerate(small_frames[:3]):
        assert np.array_equal(np.asarray(Image.open(folder / f"{index:05d}.png")), rgb)
    assert leftovers(tmp_path) == []


def test_png_folder_exists_and_overwrite(tmp_path, small_frames):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "old.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        PNGSequenceWriter(folder)

    # --overwrite replaces only frames a writer put there, never other files.
    with pytest.raises(ValueError, match="old.txt"):
        PNGSequenceWriter(folder, overwrite=True)
    assert [p.name for p in folder.iterdir()] == ["old.txt"]

    (folder / "old.txt").unlink()
    with PNGSequenceWriter(folder) as writer:
        writer.write(small_frames[0])
        writer.write(small_frames[1])
    with pytest.raises(RuntimeError, match="model failed"):
        with PNGSequenceWriter(folder, overwrite=True) as writer:
            writer.write(small_frames[0])
            raise RuntimeError("model failed")
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".png") == ["00000.png", "00001.png"]

    writer = PNGSequenceWriter(folder, overwrite=True)
    writer.write(small_frames[0])
    writer.close()
    assert sorted(p.name for p in folder.iterdir()) == [".talkinghead-output.json", "00000.png"]
    assert leftovers(tmp_path) == []


def test_png_writer_with_no_frames_saves_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames were written"):
        PNGSequenceWriter(tmp_path / "frames").close()
    assert list(tmp_path.iterdir()) == []


def test_open_writer_picks_the_writer_from_the_path(tmp_path, clip):
    video = open_writer(tmp_path / "out.MP4", 25.0, audio_from=clip)
    pngs = open_writer(tmp_path / "frames", 25.0)
    (tmp_path / "frames.v2").mkdir()
    existing = open_writer(tmp_path / "frames.v2", 25.0)
    assert isinstance(video, VideoWriter)
    assert isinstance(pngs, PNGSequenceWriter) and isinstance(
        existing, PNGSequenceWriter
    )
    assert all(isinstance(w, FrameWriter) for w in (video, pngs, existing))
    for writer in (video, pngs, existing):
        writer.abort()
    with pytest.raises(ValueError, match="folder path"):
        open_writer(tmp_path / "out.gif", 25.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.v2"]
