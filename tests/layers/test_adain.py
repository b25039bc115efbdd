"""AdaIN: every output channel takes the mean and standard deviation the latent predicts."""

from __future__ import annotations

import pytest
import torch

from talkinghead.layers import AdaIN


def test_output_takes_predicted_statistics():
    torch.manual_seed(0)
    adain = AdaIN(8, latent_dim=16)
    x = torch.randn(3, 8, 32, 32) * 5 + 2  # (b, C, h, w) with arbitrary statistics
    z = torch.randn(3, 16)
    out = adain(x, z)
    scale, bias = adain.affine_params(z)  # (b, C) each
    torch.testing.assert_close(out.mean(dim=(2, 3)), bias, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.std(dim=(2, 3), unbiased=False), scale.abs(), atol=1e-3, rtol=1e-3)


def test_zero_latent_is_plain_instance_norm():
    adain = AdaIN(4, latent_dim=6)
    scale, bias = adain.affine_params(torch.zeros(2, 6))
    torch.testing.assert_close(scale, torch.ones(2, 4))
    torch.testing.assert_close(bias, torch.zeros(2, 4))
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(adain(x, torch.zeros(2, 6)), torch.nn.functional.instance_norm(x))


def test_needs_latent():
    with pytest.raises(ValueError, match="latent"):
        AdaIN(4, latent_dim=6)(torch.randn(1, 4, 4, 4))
