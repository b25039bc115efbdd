"""StyleGAN2 logistic losses and the R1 penalty on known values."""

from __future__ import annotations

import math

import pytest
import torch

from talkinghead.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_logistic_losses_on_known_logits():
    real = torch.tensor([0.0, 2.0])
    fake = torch.tensor([-1.0, 3.0])
    expected_d = (softplus(0.0) + softplus(-2.0)) / 2 + (softplus(-1.0) + softplus(3.0)) / 2
    assert float(d_logistic_loss(real, fake)) == pytest.approx(expected_d, rel=1e-6)
    assert float(g_nonsaturating_loss(fake)) == pytest.approx((softplus(1.0) + softplus(-3.0)) / 2, rel=1e-6)
    assert float(d_logistic_loss(torch.zeros(3), torch.zeros(3))) == pytest.approx(2 * math.log(2), rel=1e-6)


def test_losses_are_stable_for_large_logits():
    big = torch.tensor([1e4, -1e4])
    assert torch.isfinite(d_logistic_loss(big, -big)) and torch.isfinite(g_nonsaturating_loss(big))
    assert float(d_logistic_loss(torch.full((2,), 100.0), torch.full((2,), -100.0))) == pytest.approx(0.0, abs=1e-6)


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm():
    torch.manual_seed(0)
    weight = torch.randn(3, 4, 4)
    real = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (real * weight).flatten(1).sum(dim=1, keepdim=True)  # D(x) = <w, x>, (b, 1)
    penalty = d_r1_loss(logits, real).detach()
    assert float(penalty) == pytest.approx(float(weight.pow(2).sum()), rel=1e-5)


def test_r1_keeps_the_graph_for_the_discriminator_update():
    scale = torch.tensor(1.5, requires_grad=True)
    real = torch.randn(4, 2, 3, 3, requires_grad=True)
    logits = scale * real.flatten(1).sum(dim=1)  # grad_x = scale everywhere, 18 elements
    penalty = d_r1_loss(logits, real)
    assert float(penalty.detach()) == pytest.approx(1.5**2 * 18, rel=1e-6)
    penalty.backward()
    assert float(scale.grad) == pytest.approx(2 * 1.5 * 18, rel=1e-6)


def test_r1_of_a_quadratic_discriminator_averages_over_the_batch():
    real = torch.tensor([[1.0, 2.0], [3.0, 0.0]], requires_grad=True)
    logits = 0.5 * real.pow(2).sum(dim=1)  # grad_x = x
    assert float(d_r1_loss(logits, real).detach()) == pytest.approx((5.0 + 9.0) / 2)
