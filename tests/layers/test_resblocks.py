"""Residual blocks: output shapes for every variant and the norm's condition reaching it."""

from __future__ import annotations

import pytest
import torch

from talkinghead.layers import DownResBlock, SPADEResBlock, UpResBlock


@pytest.mark.parametrize(("size", "expected"), [(16, 8), (9, 4)])
def test_down_block_halves_resolution(size, expected):
    block = DownResBlock(4, 8)
    assert block(torch.randn(2, 4, size, size)).shape == (2, 8, expected, expected)


def test_down_block_with_instance_norm_and_adain():
    x = torch.randn(2, 4, 8, 8)
    assert DownResBlock(4, 4, norm="instance")(x).shape == (2, 4, 4, 4)
    block = DownResBlock(4, 6, norm="adain", norm_kwargs={"latent_dim": 5})
    z1, z2 = torch.randn(2, 5), torch.randn(2, 5)
    assert block(x, z1).shape == (2, 6, 4, 4)
    assert not torch.allclose(block(x, z1), block(x, z2))  # the latent is used


@pytest.mark.parametrize(("upsample", "size"), [(True, 16), (False, 8)])
@pytest.mark.parametrize(("in_channels", "out_channels"), [(6, 6), (12, 4)])
def test_up_block_shapes(upsample, size, in_channels, out_channels):
    block = UpResBlock(in_channels, out_channels, norm="adain", norm_kwargs={"latent_dim": 5}, upsample=upsample)
    out = block(torch.randn(2, in_channels, 8, 8), torch.randn(2, 5))
    assert out.shape == (2, out_channels, size, size)
    assert (block.skip is None) == (in_channels == out_channels)


def test_up_block_needs_its_latent():
    with pytest.raises(ValueError, match="latent_dim"):
        UpResBlock(4, 4, norm="adain")


def test_up_block_without_norm():
    assert UpResBlock(4, 2)(torch.randn(1, 4, 8, 8)).shape == (1, 2, 16, 16)


@pytest.mark.parametrize(("in_channels", "out_channels"), [(8, 8), (8, 4), (4, 8)])
def test_spade_block_shapes(in_channels, out_channels):
    block = SPADEResBlock(in_channels, out_channels, cond_channels=3, hidden_channels=8)
    out = block(torch.randn(2, in_channels, 8, 8), torch.randn(2, 3, 32, 32))
    assert out.shape == (2, out_channels, 8, 8)
    learned_shortcut = in_channels != out_channels
    assert (block.skip is not None) == learned_shortcut
    assert (block.norm_skip is not None) == learned_shortcut
