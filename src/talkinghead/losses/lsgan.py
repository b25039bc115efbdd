"""LSGAN losses and feature matching on a multi-scale discriminator (pix2pixHD, MetaPortrait Eq. 4).

A multi-scale discriminator returns, per scale, the list of its block outputs; the last
is the patch logit map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MultiScaleOutput = list[list[torch.Tensor]]


def lsgan_d_loss(real: MultiScaleOutput, fake: MultiScaleOutput) -> torch.Tensor:
    """Mean over scales of ``(D(x) - 1)^2 + D(G(z))^2``; scalar fp32."""
    loss = real[0][-1].new_zeros((), dtype=torch.float32)
    for real_scale, fake_scale in zip(real, fake):
        loss = loss + ((real_scale[-1].float() - 1.0) ** 2).mean() + (fake_scale[-1].float() ** 2).mean()
    return loss / len(real)


def lsgan_g_loss(fake: MultiScaleOutput) -> torch.Tensor:
    """Mean over scales of ``(D(G(z)) - 1)^2``; scalar fp32."""
    loss = fake[0][-1].new_zeros((), dtype=torch.float32)
    for scale in fake:
        loss = loss + ((scale[-1].float() - 1.0) ** 2).mean()
    return loss / len(fake)


def feature_matching_loss(real: MultiScaleOutput, fake: MultiScaleOutput) -> torch.Tensor:
    """Mean over scales and layers (the logits excluded) of L1 between D's features of real and fake.

    The real features are constants (detached).
    """
    loss = fake[0][-1].new_zeros((), dtype=torch.float32)
    count = 0
    for real_scale, fake_scale in zip(real, fake):
        for r, f in zip(real_scale[:-1], fake_scale[:-1]):
            loss = loss + F.l1_loss(f.float(), r.detach().float())
            count += 1
    return loss / max(count, 1)
