"""Input/output faults of issue 26: each ends in one clear line (or a warning), no traceback, no partial output.

Media fixtures are made from the real files in ../shared/data/real: an mp4 cut off mid-file, an
mp4 whose timestamps are all zero, a portrait turned 180 degrees, a huge photo upscaled from a
real one, a folder of frames of mixed sizes.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from talkinghead import cli

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "models" / "demo"


def one_error_line(capsys) -> str:
    """The single stderr line of a refused command (and nothing else on stderr)."""
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


def _faststart_copy(src: Path, dst: Path) -> Path:
    """``src``'s video stream copied into an mp4 whose index comes first (as streamed downloads are)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def media(tmp_path_factory, real_data) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faults")
    whole = _faststart_copy(real_data / "liveportrait_d18.mp4", folder / "whole.mp4")  # 216 frames, 30 fps
    data = whole.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: len(data) * 4 // 10])  # a download that stopped at 40 %
    zeroed = bytearray(data)  # every sample duration of the index (stts) set to 0: all timestamps 0
    at = zeroed.find(b"stts")
    for entry in range(struct.unpack(">I", zeroed[at + 8:at + 12])[0]):
        zeroed[at + 16 + entry * 8:at + 20 + entry * 8] = struct.pack(">I", 0)
    (folder / "zero.mp4").write_bytes(bytes(zeroed))
    portrait = Image.open(real_data / "sadtalker_sad.png").convert("RGB")
    portrait.rotate(180).save(folder / "upside_down.png")
    mixed = folder / "mixed"
    mixed.mkdir()
    portrait.save(mixed / "000.png")
    portrait.save(mixed / "001.png")
    Image.open(real_data / "sadtalker_sad1.png").convert("RGB").save(mixed / "002.png")
    faceless = folder / "faceless.mp4"  # the grey backdrop of a real clip, no face in it
    with av.open(str(real_data / "liveportrait_d18.mp4")) as inp, av.open(str(faceless), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width = stream.height = 128
        stream.pix_fmt = "yuv420p"
        for index, frame in enumerate(inp.decode(video=0)):
            if index == 12:
                break
            corner = frame.to_ndarray(format="rgb24")[:64, :64].repeat(2, axis=0).repeat(2, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(corner), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return {"whole": whole, "faceless": faceless, "cut": cut, "zero": folder / "zero.mp4", "upside_down": folder / "upside_down.png",
            "mixed": mixed, "portrait": real_data / "sadtalker_sad.png", "folder": folder}


# ----------------------------------------------------------------------------- outputs checked before work


@pytest.mark.parametrize("suffix", [".gif", ".avi", ".webm", ".png"])
def test_animate_refuses_an_unsupported_suffix_before_loading(tmp_path, capsys, media, monkeypatch, suffix):
    from talkinghead.inference import pipeline

    monkeypatch.setattr(pipeline.AnimationPipeline, "from_pretrained", None)  # loading it would fail loudly
    out = tmp_path / f"out{suffix}"
    code = cli.main(["animate", "--checkpoint", str(DEMO), "--source", str(media["portrait"]),
                     "--driving", str(media["whole"]), "--output", str(out)])
    line = one_error_line(capsys)
    assert code == 2 and str(out) in line and suffix in line and ".mp4, .mov, .mkv" in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, option", [
    (["animate", "--output-size", "-5"], "--output-size"),
    (["animate", "--fps", "0"], "--fps"),
    (["animate", "--batch-size", "0"], "--batch-size"),
    (["animate", "--max-frames", "0"], "--max-frames"),
    (["upscale", "--fps", "0"], "--fps"),
    (["upscale", "--batch-size", "-1"], "--batch-size"),
    (["evaluate", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "--max-videos", "0"], "--max-videos"),
    (["prepare", "--size", "-5"], "--size"),
    (["prepare", "--workers", "0"], "--workers"),
    (["train", "--max-steps", "0"], "--max-steps"),
])
def test_bad_numbers_are_one_line_naming_the_option(tmp_path, capsys, media, argv, option):
    command, *flags = argv
    out = tmp_path / "out"
    full = {
        "animate": ["animate", "--checkpoint", str(DEMO), "--source", str(media["portrait"]),
                    "--driving", str(media["mixed"]), "--output", str(out / "a.mp4")],
        "upscale": ["upscale", str(media["mixed"]), str(out / "a.mp4")],
        "evaluate": ["evaluate", "copy-source", str(tmp_path), "--output", str(out)],
        "prepare": ["prepare", str(media["whole"]), str(out)],
        "train": ["train", str(REPO / "configs" / "lsr" / "tiny.yaml"), "--run-dir", str(out)],
    }[command]
    assert cli.main(full + flags) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {option} must be a number") and flags[-1] in line
    assert not out.exists()


def test_folder_outputs_that_are_files_are_refused(tmp_path, capsys, media):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    cases = [
        ["prepare", str(media["whole"]), str(taken)],
        ["train", str(REPO / "configs" / "lsr" / "tiny.yaml"), "--run-dir", str(taken / "run")],
        ["export", "onnx", "--checkpoint", str(DEMO), "--output", str(taken)],
        ["evaluate", "copy-source", str(tmp_path), "--output", str(taken)],
    ]
    for argv in cases:
        assert cli.main(argv) == 2, argv
        line = one_error_line(capsys)
        assert str(taken) in line and "folder" in line
    assert taken.read_text() == "keep me"


def test_free_space_check_names_both_sizes(tmp_path):
    from talkinghead.utils.output_guard import OutputWriteError
    from talkinghead.utils.preflight import check_free_space, free_bytes

    check_free_space(tmp_path / "out", 1024)
    with pytest.raises(OutputWriteError, match=r"needs about \d+ MB but the disk has \d+ MB free"):
        check_free_space(tmp_path / "out", free_bytes(tmp_path) + 2**40)


# ----------------------------------------------------------------------------- media that is not what it claims


def test_a_video_cut_off_mid_download_warns_with_both_frame_counts(media):
    from talkinghead.data.media_info import media_warnings
    from talkinghead.data.video import probe_video

    info = probe_video(media["cut"])
    assert info.num_frames < info.stated_frames == 216
    (warning,) = media_warnings(info)
    assert str(media["cut"]) in warning and f"{info.num_frames} frames decoded of the 216" in warning
    assert media_warnings(probe_video(media["whole"])) == []


def test_real_videos_raise_no_false_alarm(real_data):
    from talkinghead.data.media_info import media_warnings
    from talkinghead.data.video import probe_video

    for video in sorted(real_data.glob("*.mp4")):
        assert media_warnings(probe_video(video)) == [], video


def test_zero_timestamps_fall_back_to_the_nominal_rate(media):
    from talkinghead.data.media_info import media_warnings
    from talkinghead.data.video import probe_video

    info = probe_video(media["zero"])
    assert info.fps == pytest.approx(30.0) and info.retimed
    assert info.timestamps[:3] == pytest.approx([0, 1 / 30, 2 / 30])
    assert any("timestamps are broken" in w and "30 frames/s" in w for w in media_warnings(info))


def test_zero_timestamps_lose_no_frame(media):
    """The edit list on all-zero times hides 114 of 216 packets; every frame still comes out, in order."""
    from talkinghead.data.video import probe_video, read_video_frames

    info = probe_video(media["zero"])
    frames = list(read_video_frames(media["zero"]))
    assert info.num_frames == len(frames) == 216 and info.lost_frames == 0
    assert [time for _, time, _ in frames] == pytest.approx(info.timestamps)
    for (index, _, rgb), (_, _, expected) in zip(frames, read_video_frames(media["whole"]), strict=True):
        assert np.array_equal(rgb, expected), index
    picked = [index for index, _, _ in read_video_frames(media["zero"], [0, 107, 215])]
    assert picked == [0, 107, 215]


def test_frames_that_cannot_be_recovered_are_counted_in_a_warning(media, monkeypatch):
    from talkinghead.data import video_container
    from talkinghead.data.media_info import media_warnings
    from talkinghead.data.video import probe_video

    monkeypatch.setattr(video_container, "_EDIT_LIST_FORMATS", frozenset())  # as for a demuxer that cannot ignore it
    info = probe_video(media["zero"])
    assert info.num_frames == 102 and info.lost_frames == 114
    (warning,) = [w for w in media_warnings(info) if "cannot be read" in w]
    assert str(media["zero"]) in warning and "114 of its 216 frames" in warning and "only 102" in warning


def test_animate_summary_and_app_result_carry_the_early_end(tmp_path, media, caplog):
    from talkinghead.app.jobs import AppJobRunner, AppRequest
    from talkinghead.inference.animate_job import AnimateJob, OutputSpec, run_animate

    job = AnimateJob(checkpoint=DEMO, driving=media["cut"], sources=[media["portrait"]],
                     outputs=[OutputSpec(tmp_path / "out.mp4")], max_frames=2, device="cpu", progress=False)
    with caplog.at_level(logging.WARNING):
        summary = run_animate(job)
    assert summary.frames == 2 and "the video ends early" in summary.format()
    assert any("ends early" in r.getMessage() for r in caplog.records)
    runner = AppJobRunner(tmp_path / "work", device="cpu")
    upload = tmp_path / "uploads" / "cut.mp4"
    upload.parent.mkdir()
    upload.write_bytes(media["cut"].read_bytes())
    answer = runner.run(AppRequest(bundled_source="sadtalker_happy.png", driving=str(upload), max_frames=2))
    assert answer.ok and answer.warning.startswith("cut.mp4: the video ends early")
    assert str(upload.parent) not in answer.status() and "Warning: cut.mp4" in answer.status()


def test_an_upside_down_portrait_is_turned_upright(media, caplog):
    from talkinghead.inference.pipeline import AnimationPipeline

    pipeline = AnimationPipeline.from_pretrained(DEMO, device="cpu")
    upright = np.asarray(Image.open(media["portrait"]).convert("RGB"))
    with caplog.at_level(logging.WARNING):
        pipeline.set_source([media["upside_down"]])
    assert np.array_equal(pipeline.source.reference.photo, upright)
    assert any("upside down" in r.getMessage() and "upside_down.png" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        pipeline.set_source([media["portrait"]])
    assert not any("upside down" in r.getMessage() for r in caplog.records)


def test_upscale_refuses_a_huge_photo_before_loading(tmp_path, capsys, real_data, monkeypatch):
    from talkinghead.inference import upscale

    monkeypatch.setattr(upscale.StreamingUpscaler, "from_pretrained", None)  # must not be reached
    huge = tmp_path / "huge.jpg"
    Image.open(real_data / "sadtalker_sad.png").convert("RGB").resize((10000, 10000)).save(huge, quality=70)
    assert cli.main(["upscale", str(huge), str(tmp_path / "big.mp4")]) == 2
    line = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error: ")][0]
    assert "frames of 10000x10000 need about" in line and "GB" in line and "--batch-size" in line
    assert not (tmp_path / "big.mp4").exists()


def test_oversized_video_frames_are_written_scaled_down(tmp_path, monkeypatch, caplog):
    from talkinghead.inference import writers

    monkeypatch.setattr(writers, "MAX_VIDEO_PIXELS", 64 * 48)
    assert writers.fit_video_size(96, 128) == (48, 64)
    with caplog.at_level(logging.WARNING), writers.open_writer(tmp_path / "big.mp4", 25) as writer:
        for _ in range(2):
            writer.write(np.full((96, 128, 3), 120, np.uint8))
    with av.open(str(tmp_path / "big.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.height, stream.width) == (48, 64) and stream.frames == 2
    assert any("128x96" in r.getMessage() and "64x48" in r.getMessage() for r in caplog.records)


def test_upscale_keeps_the_frames_before_a_break_and_says_so(media):
    from talkinghead.data.frame_source import open_frame_source
    from talkinghead.inference.upscale import _checked_frames

    source = open_frame_source(media["cut"])
    warnings: list[str] = []
    frames = list(_checked_frames(source, source.info, warnings))
    assert len(frames) == source.info.num_frames == 75
    assert warnings == []  # said once, before the work, by media_warnings (tested above), not twice
    source.info.truncated = None  # a break the probe did not see is said when reading reaches it
    frames = list(_checked_frames(source, source.info, warnings))
    (warning,) = warnings
    assert len(frames) == 75 and "cut.mp4: reading stopped after 75 frames" in warning and "were upscaled" in warning


def test_upscale_refuses_an_output_the_disk_cannot_hold(tmp_path, capsys, media, monkeypatch):
    from talkinghead.inference import upscale
    from talkinghead.utils import preflight

    monkeypatch.setattr(upscale.StreamingUpscaler, "from_pretrained", None)  # must not be reached
    monkeypatch.setattr(preflight, "free_bytes", lambda path: 10 * 2**20)
    assert cli.main(["upscale", str(media["whole"]), str(tmp_path / "frames")]) == 2
    line = one_error_line(capsys)
    assert "216 frames at 960x960 needs about" in line and "10 MB free" in line
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_mixed_sizes_names_the_odd_file(tmp_path, capsys, media):
    out = tmp_path / "up.mp4"
    assert cli.main(["upscale", str(media["mixed"]), str(out), "--no-progress", "--device", "cpu"]) == 2
    line = one_error_line(capsys)
    assert "002.png: is 211x226" in line and "000.png is 256x256" in line
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_landmarks_file_is_one_line(tmp_path, capsys, real_data):
    dataset = tmp_path / "ds"
    assert cli.main(["prepare", str(real_data / "liveportrait_d18.mp4"), str(dataset), "--no-progress",
                     "--frames-per-clip", "3", "--size", "64"]) == 0
    capsys.readouterr()
    (npz,) = dataset.rglob("landmarks.npz")
    npz.write_bytes(npz.read_bytes()[:40])  # cut short
    assert cli.main(["inspect", str(dataset), "--sheet", str(tmp_path / "sheet.png")]) == 2
    line = one_error_line(capsys)
    assert str(npz) in line and "damaged" in line and "prepare" in line


# ----------------------------------------------------------------------------- messages that say what happened


def test_live_on_a_faceless_video_says_no_face_was_found(tmp_path, capsys, media):
    out = tmp_path / "live.mp4"
    assert cli.main(["animate", "--checkpoint", str(DEMO), "--source", str(media["portrait"]), "--driving",
                     str(media["faceless"]), "--output", str(out), "--live", "--no-progress", "--device", "cpu"]) == 2
    line = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error: ")][0]
    assert "no face was found" in line and "faceless.mp4" in line and "nothing was written" in line
    assert list(tmp_path.iterdir()) == []


def test_resume_with_only_corrupt_checkpoints_says_so(tmp_path):
    from talkinghead.weights.checkpoint import CheckpointManager

    manager = CheckpointManager(tmp_path / "run")
    assert "has no checkpoint" in manager.nothing_to_resume()
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step_000010.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning):
        assert manager.load_latest() is None
    message = manager.nothing_to_resume()
    assert "corrupt or unreadable" in message and "step_000010.pt" in message


def test_evaluate_rerun_removes_the_previous_runs_images(tmp_path):
    from talkinghead.evaluation.write_reports import _remove_unreferenced_images

    for name in ("qualitative/run_a/v0.png", "qualitative/run_b/v0.png", "qualitative/gt/v0.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"png")
    results = {"runs": [{"qualitative": [{"output": "qualitative/run_b/v0.png"}]}],
               "qualitative_inputs": [{"source": None, "ground_truth": "qualitative/gt/v0.png"}]}
    _remove_unreferenced_images(results, tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["qualitative/gt/v0.png", "qualitative/run_b/v0.png"]
    assert not (tmp_path / "qualitative" / "run_a").exists()


def test_prepare_never_merges_two_identities_by_name_cleanup(tmp_path, real_data, caplog):
    from talkinghead.data.sources import discover_clips

    for person in ("Zoë", "Zoe", "a b", "a_b"):
        (tmp_path / person).mkdir()
        (tmp_path / person / "clip.mp4").symlink_to(real_data / "liveportrait_d18.mp4")
    with caplog.at_level(logging.WARNING):
        clips, _ = discover_clips(tmp_path, identity_from="parent")
    identities = {clip.identity for clip in clips}
    assert len(identities) == 4 and {"Zoe", "a_b"} <= identities
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "'Zoe', 'Zoë'" in warned and "kept apart" in warned
