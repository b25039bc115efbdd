"""Blur keeps constants and removes the Nyquist frequency; BlurPool2d halves the size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from talkinghead.layers import Blur, BlurPool2d, make_blur_kernel


def test_kernel_is_normalised_and_separable():
    kernel = make_blur_kernel()
    assert kernel.shape == (4, 4)
    assert kernel.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(kernel[0] / kernel[0].sum(), torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8)


def test_blur_keeps_size_and_constant_image():
    x = torch.full((2, 3, 9, 10), 0.7)
    out = Blur()(x)
    assert out.shape == x.shape
    # zero padding darkens the border only
    torch.testing.assert_close(out[..., 2:-2, 2:-2], x[..., 2:-2, 2:-2])
    torch.testing.assert_close(Blur(padding_mode="replicate")(x), x)
    torch.testing.assert_close(Blur(padding_mode="reflect")(x), x)


@pytest.mark.parametrize(("size", "expected"), [(16, 8), (7, 3), (2, 1)])
def test_blur_pool_halves_size(size, expected):
    assert BlurPool2d()(torch.randn(1, 2, size, size)).shape == (1, 2, expected, expected)


def test_blur_pool_keeps_constant_and_removes_checkerboard():
    constant = torch.full((1, 1, 16, 16), -1.5)
    torch.testing.assert_close(BlurPool2d()(constant)[..., 1:-1, 1:-1], constant[..., :6, :6])
    torch.testing.assert_close(BlurPool2d(padding_mode="replicate")(constant), constant[..., :8, :8])
    i, j = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    checkerboard = ((-1.0) ** (i + j))[None, None]  # the Nyquist frequency
    # plain stride-2 subsampling aliases it into a constant; the blur removes it
    assert checkerboard[..., ::2, ::2].abs().min() == 1
    assert BlurPool2d()(checkerboard)[..., 1:-1, 1:-1].abs().max() < 1e-6


def test_blur_pool_is_centred_like_average_pooling():
    # a linear ramp is averaged symmetrically, so both agree away from the borders
    ramp = torch.arange(16.0).expand(1, 1, 16, 16)
    torch.testing.assert_close(BlurPool2d()(ramp)[..., 1:-1, 1:-1], F.avg_pool2d(ramp, 2)[..., 1:-1, 1:-1])


def test_unknown_padding_mode():
    with pytest.raises(ValueError, match="padding_mode"):
        Blur(padding_mode="circular")
