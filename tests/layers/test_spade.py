"""SPADE: a constant condition gives an instance norm with a per-channel affine; condition resizing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from talkinghead.layers import SPADE, resize_condition


def constant_condition(batch: int, channels: int, size: int) -> torch.Tensor:
    """(b, c, size, size) maps, constant in space, different per sample and channel."""
    return torch.randn(batch, channels, 1, 1).expand(batch, channels, size, size)


def test_constant_condition_is_instance_norm_with_affine():
    torch.manual_seed(0)
    spade = SPADE(6, cond_channels=5, hidden_channels=8, kernel_size=1)
    x = torch.randn(2, 6, 12, 12) * 3 - 1
    cond = constant_condition(2, 5, 12)
    out = spade(x, cond)
    scale, bias = spade.affine_params(cond)  # (b, C, h, w), constant in space
    for sample in range(2):
        reference = torch.nn.InstanceNorm2d(6, affine=True)
        with torch.no_grad():
            reference.weight.copy_(scale[sample, :, 0, 0])
            reference.bias.copy_(bias[sample, :, 0, 0])
        torch.testing.assert_close(out[sample : sample + 1], reference(x[sample : sample + 1]), atol=1e-5, rtol=1e-5)


def test_constant_condition_with_3x3_convs_away_from_borders():
    torch.manual_seed(0)
    spade = SPADE(4, cond_channels=3, hidden_channels=8, kernel_size=3)
    x = torch.randn(1, 4, 10, 10)
    cond = constant_condition(1, 3, 10)
    out = spade(x, cond)
    normalised = F.instance_norm(x)
    inner = (..., slice(2, -2), slice(2, -2))  # two zero-padded 3x3 convs touch 2 border pixels
    scale, bias = spade.affine_params(cond)
    scale, bias = scale[:, :, 5:6, 5:6], bias[:, :, 5:6, 5:6]  # (b, C, 1, 1) from one inner pixel
    torch.testing.assert_close(out[inner], (normalised * scale + bias)[inner], atol=1e-5, rtol=1e-5)


def test_condition_is_resized_to_features():
    spade = SPADE(4, cond_channels=3, hidden_channels=8)
    x = torch.randn(2, 4, 8, 8)
    assert spade(x, torch.randn(2, 3, 32, 32)).shape == x.shape
    assert spade(x, torch.randn(2, 3, 4, 4)).shape == x.shape


def test_resize_condition_keeps_soft_layouts_normalised():
    layout = torch.softmax(torch.randn(2, 7, 32, 32), dim=1)
    small = resize_condition(layout, (8, 8))  # area average
    torch.testing.assert_close(small.sum(dim=1), torch.ones(2, 8, 8))
    torch.testing.assert_close(small, F.avg_pool2d(layout, 4))
    large = resize_condition(layout, (64, 64))  # bilinear
    torch.testing.assert_close(large.sum(dim=1), torch.ones(2, 64, 64))
    assert resize_condition(layout, (32, 32)) is layout


def test_needs_condition():
    with pytest.raises(ValueError, match="condition"):
        SPADE(4, cond_channels=3)(torch.randn(1, 4, 4, 4))
