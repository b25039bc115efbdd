"""Equalised layers: unit effective scale, lr_mul scales the gradient, deterministic init."""

from __future__ import annotations

import pytest
import torch

from talkinghead.layers import EqualConv2d, EqualLinear


def test_linear_keeps_unit_variance():
    torch.manual_seed(0)
    layer = EqualLinear(512, 512)
    x = torch.randn(2048, 512)  # (n, in)
    assert layer(x).std().item() == pytest.approx(1.0, abs=0.1)


def test_conv_keeps_unit_variance():
    torch.manual_seed(0)
    layer = EqualConv2d(64, 64, 3)
    x = torch.randn(8, 64, 24, 24)  # no padding: every output sees a full 3x3 window
    assert layer(x).std().item() == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("make", [lambda lr: EqualLinear(16, 8, lr_mul=lr), lambda lr: EqualConv2d(4, 8, 3, lr_mul=lr)])
def test_lr_mul_scales_gradient_not_output(make):
    lr_mul = 0.01
    torch.manual_seed(0)
    plain = make(1.0)
    torch.manual_seed(0)
    slow = make(lr_mul)
    x = torch.randn(3, 16) if isinstance(plain, EqualLinear) else torch.randn(3, 4, 8, 8)
    out_plain, out_slow = plain(x), slow(x)
    torch.testing.assert_close(out_plain, out_slow)  # same effective weights at init
    target = torch.randn_like(out_plain)
    (out_plain * target).sum().backward()
    (out_slow * target).sum().backward()
    torch.testing.assert_close(slow.weight.grad, plain.weight.grad * lr_mul)
    torch.testing.assert_close(slow.bias.grad, plain.bias.grad * lr_mul)


def test_linear_bias_init_is_the_effective_bias():
    layer = EqualLinear(4, 3, bias_init=1.0, lr_mul=0.1)
    torch.testing.assert_close(layer(torch.zeros(2, 4)), torch.ones(2, 3))


def test_no_bias():
    assert EqualConv2d(2, 3, 1, bias=False).bias is None
    assert EqualLinear(2, 3, bias=False).bias is None


def test_initialisation_is_seeded():
    torch.manual_seed(7)
    a = EqualConv2d(3, 5, 3)
    torch.manual_seed(7)
    b = EqualConv2d(3, 5, 3)
    torch.testing.assert_close(a.weight, b.weight)
