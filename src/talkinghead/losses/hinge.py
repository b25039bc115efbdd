"""Hinge adversarial losses (FSTH Eq. 4 and 6, after SAGAN/BigGAN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """FSTH Eq. 6: mean of ``max(0, 1 + D(x_hat)) + max(0, 1 - D(x))``; scores (b,) -> scalar fp32."""
    return (F.relu(1.0 + fake_scores.float()) + F.relu(1.0 - real_scores.float())).mean()


def g_hinge_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """FSTH Eq. 4's realism term: ``-D(x_hat)``, mean over the batch; scalar fp32."""
    return -fake_scores.float().mean()


def block_feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """L_FM: the sum over D's residual blocks of the mean L1 between fake and (constant) real activations."""
    loss = fake[0].new_zeros((), dtype=torch.float32)
    for r, f in zip(real, fake):
        loss = loss + F.l1_loss(f.float(), r.detach().float())
    return loss
