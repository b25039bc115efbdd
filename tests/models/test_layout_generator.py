"""G_l (LayoutGenerator) through the shared model test, with and without R_t."""

from __future__ import annotations

import pytest
import torch
from model_test_mixin import ModelTesterMixin

from talkinghead.config.lsr import LayoutGeneratorConfig
from talkinghead.models.layout_generator import LayoutGenerator

LANDMARK_CHANNELS = 3
LATENT_DIM = 16
LAYOUT_CHANNELS = 5
CONFIG = LayoutGeneratorConfig(base_channels=8, max_channels=32, num_down_blocks=3, layout_channels=LAYOUT_CHANNELS)


class TestLayoutGenerator(ModelTesterMixin):
    unused_parameters = frozenset({"rgb_head.weight", "rgb_head.bias"})

    def build(self):
        return LayoutGenerator(CONFIG, image_size=32, landmark_channels=LANDMARK_CHANNELS, latent_dim=LATENT_DIM)

    def inputs(self, batch_size):
        return torch.rand(batch_size, LANDMARK_CHANNELS, 32, 32) * 2 - 1, torch.randn(batch_size, LATENT_DIM)

    def forward(self, model, inputs):
        layout, rgb = model(*inputs)
        assert rgb is None
        return [layout]

    def expected_shapes(self, batch_size):
        return [(batch_size, LAYOUT_CHANNELS, 32, 32)]


class TestLayoutGeneratorWithRGB(TestLayoutGenerator):
    unused_parameters = frozenset()

    def forward(self, model, inputs):
        layout, rgb = model(*inputs, with_rgb=True)
        return [layout, rgb]

    def expected_shapes(self, batch_size):
        return [(batch_size, LAYOUT_CHANNELS, 32, 32), (batch_size, 3, 32, 32)]


def test_rgb_in_range_and_layout_activation():
    torch.manual_seed(0)
    model = LayoutGenerator(CONFIG, 32, LANDMARK_CHANNELS, LATENT_DIM)
    layout, rgb = model(torch.randn(2, 3, 32, 32), torch.randn(2, LATENT_DIM), with_rgb=True)
    assert rgb.abs().max() <= 1
    torch.testing.assert_close(model.activate(layout).sum(dim=1), torch.ones(2, 32, 32))
    raw = LayoutGenerator(
        LayoutGeneratorConfig(base_channels=8, max_channels=32, num_down_blocks=3, layout_activation="none"),
        32,
        LANDMARK_CHANNELS,
        LATENT_DIM,
    )
    assert raw.activate(layout) is layout


def test_latent_changes_the_layout():
    torch.manual_seed(0)
    model = LayoutGenerator(CONFIG, 32, LANDMARK_CHANNELS, LATENT_DIM)
    landmarks = torch.randn(1, 3, 32, 32)
    a, _ = model(landmarks, torch.randn(1, LATENT_DIM))
    b, _ = model(landmarks, torch.randn(1, LATENT_DIM))
    assert not torch.allclose(a, b)


def test_rejects_too_small_innermost_map():
    with pytest.raises(ValueError, match="2x2"):
        LayoutGenerator(LayoutGeneratorConfig(num_down_blocks=5), 32, 3, 16)
