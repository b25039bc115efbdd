"""SAGAN self-attention (Zhang et al. 2019), the block FSTH inserts in E, G and D (§3.4, A.4)."""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.layers.spectral import sn_conv2d


class SelfAttention(nn.Module):
    """``x + gamma * attention(x)`` over all positions of a feature map; gamma starts at 0.

    Queries and keys are 1x1 projections to C/8 channels, values to C/2, projected back to C
    (the SAGAN/BigGAN layout); every projection is spectrally normalised. With gamma = 0
    the block starts as the identity, so a fresh network behaves as if it had none.

    Args:
        channels: C of the input (at least 8).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 8:
            raise ValueError(f"self-attention needs at least 8 channels, got {channels}")
        self.query = sn_conv2d(channels, channels // 8, 1, bias=False)
        self.key = sn_conv2d(channels, channels // 8, 1, bias=False)
        self.value = sn_conv2d(channels, channels // 2, 1, bias=False)
        self.out = sn_conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, C, h, w) -> (b, C, h, w)."""
        b, c, h, w = x.shape
        q = self.query(x).flatten(2)  # (b, C/8, hw)
        k = self.key(x).flatten(2)  # (b, C/8, hw)
        v = self.value(x).flatten(2)  # (b, C/2, hw)
        attention = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # (b, hw query, hw key)
        o = torch.bmm(v, attention.transpose(1, 2)).reshape(b, c // 2, h, w)
        return x + self.gamma * self.out(o)
