"""D (StyleGAN2Discriminator) through the shared model test, and odd batch sizes."""

from __future__ import annotations

import pytest
import torch
from model_test_mixin import ModelTesterMixin

from talkinghead.config.lsr import DiscriminatorConfig
from talkinghead.models.discriminator import StyleGAN2Discriminator

CONFIG = DiscriminatorConfig(base_channels=8, max_channels=32, num_down_blocks=3, mbstd_group_size=4)


class TestStyleGAN2Discriminator(ModelTesterMixin):
    def build(self):
        return StyleGAN2Discriminator(CONFIG, image_size=32)

    def inputs(self, batch_size):
        return (torch.rand(batch_size, 3, 32, 32) * 2 - 1,)

    def expected_shapes(self, batch_size):
        return [(batch_size,)]


class TestStyleGAN2DiscriminatorWithLandmarks(TestStyleGAN2Discriminator):
    batch_size = 3  # not a multiple of the group size

    def build(self):
        return StyleGAN2Discriminator(CONFIG, image_size=32, in_channels=6)

    def inputs(self, batch_size):
        return (torch.rand(batch_size, 6, 32, 32) * 2 - 1,)


@pytest.mark.parametrize("batch_size", [1, 5, 6])
def test_any_batch_size(batch_size):
    torch.manual_seed(0)
    model = StyleGAN2Discriminator(CONFIG, 32)
    logits = model(torch.randn(batch_size, 3, 32, 32))
    assert logits.shape == (batch_size,)
    logits.sum().backward()


def test_final_map_and_wrong_input():
    model = StyleGAN2Discriminator(CONFIG, 32)
    assert model.final_size == 4
    assert model.fc.in_features == 32 * 4 * 4
    with pytest.raises(ValueError, match=r"\(b, 3, 32, 32\)"):
        model(torch.randn(1, 3, 64, 64))
