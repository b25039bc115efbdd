"""Adaptive instance normalisation (Huang & Belongie 2017), as LSR's G_l uses it (A.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.layers.equalized import EqualLinear


class AdaIN(nn.Module):
    """Instance norm without parameters, then a per-channel scale and bias predicted from a latent.

    ``out = (1 + gamma(z)) * instance_norm(x) + beta(z)``: the scale starts around 1 and
    the bias around 0 (an equalised linear layer with zero bias predicts gamma and beta), so
    each output channel takes the mean beta and the standard deviation |1 + gamma|.

    Args:
        num_features: channels C of the normalised input.
        latent_dim: size of the latent z (z^l in LSR).
    """

    conditional = True

    def __init__(self, num_features: int, latent_dim: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.latent_dim = latent_dim
        self.affine = EqualLinear(latent_dim, 2 * num_features)

    def affine_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, latent_dim) -> scale (b, C) and bias (b, C) applied to the normalised input."""
        gamma, beta = self.affine(z).chunk(2, dim=1)  # (b, C) each
        return 1.0 + gamma, beta

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, C, h, w) and cond = z (b, latent_dim) -> (b, C, h, w)."""
        if cond is None:
            raise ValueError("AdaIN needs its latent: call norm(x, cond=z) with z of shape (b, latent_dim)")
        scale, bias = self.affine_params(cond)
        normalised = F.instance_norm(x)
        return normalised * scale[:, :, None, None] + bias[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.num_features}, latent_dim={self.latent_dim}"
