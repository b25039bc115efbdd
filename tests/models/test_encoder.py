"""E_l / E_s (LatentEncoder) through the shared model test."""

from __future__ import annotations

import pytest
import torch
from model_test_mixin import ModelTesterMixin

from talkinghead.config.lsr import EncoderConfig
from talkinghead.models.encoder import LatentEncoder

IN_CHANNELS = 6  # RGB + 3-channel landmark image
LATENT_DIM = 16


class TestLatentEncoder(ModelTesterMixin):
    config = EncoderConfig(base_channels=8, max_channels=32, num_down_blocks=3, pooling="flatten")

    def build(self):
        return LatentEncoder(self.config, image_size=32, in_channels=IN_CHANNELS, latent_dim=LATENT_DIM)

    def inputs(self, batch_size):
        return (torch.randn(batch_size, IN_CHANNELS, 32, 32),)

    def expected_shapes(self, batch_size):
        return [(batch_size, LATENT_DIM)]


class TestLatentEncoderMeanPooling(TestLatentEncoder):
    config = EncoderConfig(base_channels=8, max_channels=32, num_down_blocks=3, pooling="mean")


def test_channel_schedule_and_final_map():
    encoder = LatentEncoder(EncoderConfig(base_channels=8, max_channels=32, num_down_blocks=3), 32, 6, 16)
    assert [block.conv2.out_channels for block in encoder.blocks] == [16, 32, 32]
    assert encoder.final_size == 4
    assert encoder.fc.in_features == 32 * 4 * 4


def test_flatten_encoder_rejects_other_sizes():
    encoder = LatentEncoder(EncoderConfig(base_channels=8, max_channels=32, num_down_blocks=3), 32, 6, 16)
    with pytest.raises(ValueError, match="32x32"):
        encoder(torch.randn(1, 6, 64, 64))


def test_rejects_indivisible_size():
    with pytest.raises(ValueError, match="divisible"):
        LatentEncoder(EncoderConfig(num_down_blocks=3), 36, 6, 16)
