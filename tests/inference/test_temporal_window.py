"""Temporal post-processing: sliding windows over the output stream, and the pipeline calling a method's hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkinghead.data.video import read_video_frames
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.inference.temporal import TemporalWindow
from talkinghead.models.pretrained import load_pretrained


def test_windows_hold_each_frame_with_its_neighbours_repeated_at_the_ends():
    window = TemporalWindow(radius=2)
    out = []
    for i in range(6):
        out += window.push(f"frame{i}", torch.tensor([float(i)]))
        assert len(window._frames) <= 2 * 2 + 1 + 2  # bounded: past neighbours + frames waiting
    out += window.flush()
    assert [item for item, _ in out] == [f"frame{i}" for i in range(6)]
    centres = [[float(v) for v in w.flatten()] for _, w in out]
    assert centres == [
        [0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 5], [3, 4, 5, 5, 5],
    ]


def test_a_window_is_released_as_soon_as_its_future_neighbours_arrive():
    window = TemporalWindow(radius=1)
    assert window.push("a", torch.zeros(1)) == []
    ready = window.push("b", torch.ones(1))
    assert [item for item, _ in ready] == ["a"]
    with pytest.raises(ValueError, match="radius"):
        TemporalWindow(0)


def test_the_pipeline_post_processes_each_frame_with_its_neighbours(release, portrait, real_data):
    frames = [f for _, _, f in read_video_frames(real_data / "liveportrait_d18.mp4", [0, 40, 80, 129])]
    pretrained = load_pretrained(release)
    plain = AnimationPipeline.from_weights(pretrained, device="cpu")
    plain.set_source([portrait])
    raw = [f.image.astype(np.float64) for f in plain.animate(frames, None)]

    class Averaging(type(pretrained.inference_model())):
        temporal_radius = 1

        def postprocess(self, window):
            return window.mean(dim=1)  # (b, 3, 3, s, s) -> (b, 3, s, s)

    model = Averaging(pretrained.config)
    pretrained.load_into({name: getattr(model, name) for name in model.network_names})
    temporal = AnimationPipeline(model.eval(), prepare=pretrained.prepare_config(), device="cpu")
    temporal.set_source([portrait])
    smoothed = [f for f in temporal.animate(frames, None)]
    assert [f.index for f in smoothed] == [0, 1, 2, 3]
    # frame 1 averages frames 0-2; the last one repeats itself past the end (8-bit rounding aside)
    np.testing.assert_allclose(smoothed[1].image, (raw[0] + raw[1] + raw[2]) / 3, atol=1.01)
    np.testing.assert_allclose(smoothed[3].image, (raw[2] + 2 * raw[3]) / 3, atol=1.01)
    assert np.abs(smoothed[1].image.astype(np.float64) - raw[1]).max() > 2  # it really changed the frame
