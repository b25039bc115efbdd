"""Latent regularisation of LSR Eq. 4: lambda_L2 (||z^l||^2 + ||z^s||^2)."""

from __future__ import annotations

import torch


def latent_l2(z: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm of each latent code divided by its size, averaged over the batch.

    Dividing by the code size (a mean square per entry) keeps lambda_L2 = 1 of the authors'
    settings comparable to the other terms whatever the latent size: a 512-d code of unit
    entries costs 1, not 512, so the penalty asks for compact codes without swamping the
    reconstruction losses (whose per-pixel means are of order 0.1-1).

    Args:
        z: (b, ...) latent codes; every dimension after the first belongs to one code.

    Returns:
        Scalar fp32 ``mean_i ||z_i||^2 / numel(z_i)``.
    """
    return z.float().pow(2).mean()
