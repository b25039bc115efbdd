"""Minibatch standard deviation (Karras et al. 2018, ProGAN §3; StyleGAN2's discriminator epilogue)."""

from __future__ import annotations

import torch
from torch import nn


def minibatch_group_size(batch_size: int, group_size: int) -> int:
    """The largest divisor of ``batch_size`` that is at most ``group_size``.

    StyleGAN2 uses ``min(group_size, batch_size)`` and fails when that does not divide the
    batch; taking a divisor keeps every group the same size (batch 6 with groups of 4 uses
    groups of 3; a prime batch larger than the group uses groups of 1, i.e. no statistic).
    """
    group = max(1, min(group_size, batch_size))
    while batch_size % group:
        group -= 1
    return group


class MinibatchStdDev(nn.Module):
    """Appends the average standard deviation of the features over groups of samples.

    The samples of a batch are split into groups (sample ``n`` is in group member
    ``n // (b / G)``, as in StyleGAN2); every sample gets ``num_channels`` constant maps
    holding its group's feature standard deviation averaged over channels and pixels, which
    lets the discriminator see a lack of variety in a batch.

    Args:
        group_size: preferred group size G (StyleGAN2: 4), see :func:`minibatch_group_size`.
        num_channels: statistics appended; the channels are split into that many parts.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        if group_size < 1 or num_channels < 1:
            raise ValueError(
                f"MinibatchStdDev: group_size and num_channels must be >= 1, got {group_size}, {num_channels}"
            )
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, h, w) -> (b, c + num_channels, h, w)."""
        b, c, h, w = x.shape
        if c % self.num_channels:
            raise ValueError(f"MinibatchStdDev: {c} channels do not split into {self.num_channels} parts")
        group = minibatch_group_size(b, self.group_size)
        parts = self.num_channels
        # float32 statistics also under bf16 autocast.
        y = x.float().reshape(group, b // group, parts, c // parts, h, w)  # (G, b/G, F, c/F, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # (b/G, F, c/F, h, w)
        y = y.mean(dim=(2, 3, 4))  # (b/G, F)
        y = y.reshape(b // group, parts, 1, 1).repeat(group, 1, h, w)  # (b, F, h, w)
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
