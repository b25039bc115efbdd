"""G_s (SPADEImageGenerator) through the shared model test."""

from __future__ import annotations

import pytest
import torch
from model_test_mixin import ModelTesterMixin

from talkinghead.config.lsr import ImageGeneratorConfig
from talkinghead.models.image_generator import SPADEImageGenerator

COND_CHANNELS = 5 + 3  # layout + landmark image
LATENT_DIM = 16
CONFIG = ImageGeneratorConfig(
    base_channels=8, max_channels=32, spade_hidden_channels=8, num_up_blocks=3, num_middle_blocks=1
)


class TestSPADEImageGenerator(ModelTesterMixin):
    def build(self):
        return SPADEImageGenerator(CONFIG, image_size=32, cond_channels=COND_CHANNELS, latent_dim=LATENT_DIM)

    def inputs(self, batch_size):
        layout = torch.softmax(torch.randn(batch_size, 5, 32, 32), dim=1)
        landmarks = torch.rand(batch_size, 3, 32, 32) * 2 - 1
        return torch.cat([layout, landmarks], dim=1), torch.randn(batch_size, LATENT_DIM)

    def expected_shapes(self, batch_size):
        return [(batch_size, 3, 32, 32)]


def test_channel_schedule_and_range():
    torch.manual_seed(0)
    model = SPADEImageGenerator(CONFIG, 32, COND_CHANNELS, LATENT_DIM)
    assert model.start_size == 4
    assert [block.conv2.out_channels for block in model.up_blocks] == [32, 16, 8]
    image = model(torch.randn(2, COND_CHANNELS, 32, 32), torch.randn(2, LATENT_DIM))
    assert image.abs().max() <= 1


def test_condition_and_latent_are_used():
    torch.manual_seed(0)
    model = SPADEImageGenerator(CONFIG, 32, COND_CHANNELS, LATENT_DIM)
    cond, z = torch.randn(1, COND_CHANNELS, 32, 32), torch.randn(1, LATENT_DIM)
    base = model(cond, z)
    assert not torch.allclose(base, model(torch.randn_like(cond), z))
    assert not torch.allclose(base, model(cond, torch.randn_like(z)))


def test_rejects_too_small_start_map():
    with pytest.raises(ValueError, match="2x2"):
        SPADEImageGenerator(ImageGeneratorConfig(num_up_blocks=5), 32, COND_CHANNELS, LATENT_DIM)
