"""The temporal super-resolution network: exactly 2x, fusion starts as the identity, release round trip."""

from __future__ import annotations

import pytest
import torch

from talkinghead.config.upscale import UpscaleModelConfig
from talkinghead.models.temporal_sr import TemporalSuperResolution, load_upscaler
from talkinghead.weights.release import ReleaseError, save_release

TINY = UpscaleModelConfig(num_neighbors=1, base_channels=4, channel_multipliers=[1, 2, 2], num_blocks=1)


@pytest.mark.parametrize("size", [(16, 16), (37, 50), (1, 3), (64, 48)])
def test_output_is_exactly_twice_the_input(size):
    torch.manual_seed(0)
    network = TemporalSuperResolution(TINY)
    window = torch.rand(2, 3, 3, *size)
    assert network(window).shape == (2, 3, 2 * size[0], 2 * size[1])


def test_untrained_fusion_ignores_the_neighbours_and_trained_fusion_uses_them():
    torch.manual_seed(0)
    network = TemporalSuperResolution(TINY).eval()
    window = torch.rand(1, 3, 3, 16, 16)
    changed = window.clone()
    changed[:, 0] = torch.rand(1, 3, 16, 16)  # another previous frame
    with torch.no_grad():
        assert torch.equal(network(window), network(changed))  # zero-initialised fusion: centre only
        for fusion in network.fusions:
            torch.nn.init.normal_(fusion.conv.weight, std=0.1)
        assert not torch.allclose(network(window), network(changed))


def test_wrong_window_length_is_refused():
    network = TemporalSuperResolution(TINY)
    with pytest.raises(ValueError, match=r"\(b, 3, 3, h, w\)"):
        network(torch.rand(1, 5, 3, 8, 8))


def test_release_round_trip_and_other_releases_refused(tmp_path):
    torch.manual_seed(1)
    network = TemporalSuperResolution(TINY).eval()
    save_release(tmp_path / "sr", {"kind": "upscale", "model": {"num_neighbors": 1, "base_channels": 4,
                                                               "channel_multipliers": [1, 2, 2], "num_blocks": 1}},
                 {"upscaler": network})
    loaded = load_upscaler(tmp_path / "sr")
    window = torch.rand(1, 3, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded(window), network(window))
    save_release(tmp_path / "other", {"method": "lsr", "model": {}}, {"generator": torch.nn.Linear(2, 2)})
    with pytest.raises(ReleaseError, match="is not a super-resolution model"):
        load_upscaler(tmp_path / "other")
