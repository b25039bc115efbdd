"""Streaming super-resolution: windows at the clip ends, bounded memory, ``talkinghead upscale``, ``animate --upscale``."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from talkinghead.cli import main
from talkinghead.config.upscale import UpscaleModelConfig
from talkinghead.data.video import probe_video, read_video_frames
from talkinghead.inference.upscale import StreamingUpscaler
from talkinghead.models.temporal_sr import TemporalSuperResolution
from talkinghead.weights.release import save_release



def cut_clip(src: Path, dst: Path, seconds: float, *filters: str) -> Path:
    """The first ``seconds`` of a real clip, re-encoded (with its audio) through ffmpeg ``filters``.

    Defined here rather than imported from the folder's conftest, whose module name clashes
    with other folders' conftest files when several test folders run together.
    """
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(src), "-t", str(seconds),
                    *filters, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dst)], check=True)
    return dst


def tiny_network(num_neighbors: int = 1, seed: int = 0) -> TemporalSuperResolution:
    """A tiny network whose fusion is not zero, so every frame of the window changes the output."""
    torch.manual_seed(seed)
    network = TemporalSuperResolution(UpscaleModelConfig(num_neighbors=num_neighbors, base_channels=4,
                                                         channel_multipliers=[1, 2], num_blocks=1))
    for fusion in network.fusions:
        torch.nn.init.normal_(fusion.conv.weight, std=0.2)
    return network.eval()


@pytest.fixture(scope="module")
def tiny_upscaler_release(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sr") / "tiny_sr"
    network = tiny_network()
    save_release(folder, {"kind": "upscale", "model": {"num_neighbors": 1, "base_channels": 4,
                                                      "channel_multipliers": [1, 2], "num_blocks": 1}},
                 {"upscaler": network})
    return folder


def frames(n: int, size: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def expected(network: TemporalSuperResolution, clip: list[np.ndarray], t: int) -> np.ndarray:
    """Frame t upscaled with its window built by clamping indices (edge replication)."""
    r = network.config.num_neighbors
    idx = [min(max(i, 0), len(clip) - 1) for i in range(t - r, t + r + 1)]
    window = torch.from_numpy(np.stack([clip[i] for i in idx]))[None].permute(0, 1, 4, 2, 3).float() / 255
    with torch.no_grad():
        out = network(window).clamp(0, 1).mul(255).round().to(torch.uint8)
    return out[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("num_neighbors, length, batch_size", [(1, 6, 4), (2, 7, 3), (2, 1, 4), (2, 3, 1), (1, 2, 2)])
def test_every_frame_comes_out_once_in_order_with_edge_replicated_windows(num_neighbors, length, batch_size):
    network = tiny_network(num_neighbors)
    clip = frames(length)
    outputs = list(StreamingUpscaler(network, batch_size=batch_size).stream(iter(clip)))
    assert len(outputs) == length
    for t, out in enumerate(outputs):
        assert out.shape == (16, 16, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, expected(network, clip, t))
    if length >= 2:  # the first frame's window replicates it, which a shifted window would not
        assert not np.array_equal(outputs[0], expected(network, clip[1:] + clip[:1], len(clip) - 1))


def test_streaming_holds_a_bounded_number_of_frames():
    upscaler = StreamingUpscaler(tiny_network(num_neighbors=2), batch_size=3)
    alive = set()
    most = 0

    def generator():
        nonlocal most
        rng = np.random.default_rng(0)
        for i in range(300):
            frame = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)  # made here, so only the upscaler keeps it
            alive.add(i)
            weakref.finalize(frame, alive.discard, i)
            most = max(most, len(alive))
            yield frame
            del frame

    count = 0
    for _ in upscaler.stream(generator()):
        count += 1
    assert count == 300
    # The window, one batch of centres, and the frame just read.
    assert most <= upscaler.max_buffered_frames + 1, most


def test_frames_of_another_size_are_refused():
    clip = frames(3, size=8) + frames(1, size=6)
    with pytest.raises(Exception, match="differs from the first frame"):
        list(StreamingUpscaler(tiny_network()).stream(clip))


def test_upscale_cli_keeps_every_frame_and_doubles_the_size(real_data, tmp_path, tiny_upscaler_release, capsys):
    clip = cut_clip(real_data / "liveportrait_d18.mp4", tmp_path / "small.mp4", 0.4, "-vf", "scale=48:48")
    out = tmp_path / "big.mp4"
    assert main(["upscale", str(clip), str(out), "--model", str(tiny_upscaler_release), "--no-progress"]) == 0
    source, result = probe_video(clip), probe_video(out)
    assert result.num_frames == source.num_frames >= 10
    assert (result.width, result.height) == (96, 96)
    assert result.fps == pytest.approx(source.fps, abs=0.01)
    assert f"upscaled {source.num_frames} frames from 48x48 to 96x96" in capsys.readouterr().out
    # PNG frames too, and every frame kept
    folder = tmp_path / "frames"
    assert main(["upscale", str(clip), str(folder), "--model", str(tiny_upscaler_release), "--no-progress"]) == 0
    assert len(sorted(folder.glob("*.png"))) == source.num_frames


def test_upscale_cli_names_a_bad_input_file(tmp_path, tiny_upscaler_release, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    assert main(["upscale", str(bad), str(tmp_path / "out.mp4"), "--model", str(tiny_upscaler_release)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert not (tmp_path / "out.mp4").exists()
    assert main(["upscale", str(tmp_path / "missing.mp4"), str(tmp_path / "o.mp4")]) == 2
    assert "missing.mp4: no such file" in capsys.readouterr().err


def test_upscale_cli_refuses_a_model_that_is_not_super_resolution(release, real_data, tmp_path, capsys):
    clip = cut_clip(real_data / "liveportrait_d18.mp4", tmp_path / "c.mp4", 0.2, "-vf", "scale=32:32")
    assert main(["upscale", str(clip), str(tmp_path / "o.mp4"), "--model", str(release)]) == 2
    assert "is not a super-resolution model" in capsys.readouterr().err


def test_animate_upscale_doubles_the_result(release, portrait, driving_clip, tiny_upscaler_release, tmp_path):
    out = tmp_path / "anim.mp4"
    assert main(["animate", "--checkpoint", str(release), "--source", str(portrait), "--driving", str(driving_clip),
                 "--output", str(out), "--no-progress", "--max-frames", "5",
                 "--upscale-model", str(tiny_upscaler_release)]) == 0
    info = probe_video(out)
    assert info.num_frames == 5 and (info.width, info.height) == (128, 128)  # the tiny release is 64 px
    frames_out = [f for _, _, f in read_video_frames(out)]
    assert all(f.shape == (128, 128, 3) for f in frames_out)


def test_bundled_model_loads_and_doubles():
    upscaler = StreamingUpscaler.from_pretrained(device="cpu")
    out = list(upscaler.stream(frames(3, size=12)))
    assert len(out) == 3 and out[0].shape == (24, 24, 3)
