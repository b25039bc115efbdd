"""D, the discriminator of LSR (§3.3, appendix A.1): StyleGAN2's residual discriminator.

LSR borrows StyleGAN2's (Karras et al. 2020) residual discriminator with the smallest width
reduced from 64 to 32; it is trained with the non-saturating logistic loss and R1 (LSR Eq. 4).
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.config.lsr import DiscriminatorConfig
from talkinghead.layers import (
    DownResBlock,
    EqualConv2d,
    EqualLinear,
    MinibatchStdDev,
    ScaledLeakyReLU,
)
from talkinghead.models.widths import level_channels


class StyleGAN2Discriminator(nn.Module):
    """D: image (optionally with its landmark image) -> one realness logit per sample.

    fromRGB (1x1 conv to ``base_channels``), ``num_down_blocks`` residual blocks with blur
    pooling doubling the feature maps up to ``max_channels``, then StyleGAN2's epilogue:
    minibatch standard deviation, 3x3 conv, flatten, fully connected, LReLU, fully connected
    to 1. The blocks are pre-activation (:class:`DownResBlock`), so fromRGB has no activation
    of its own and the last block's output is activated before the epilogue.

    Args:
        config: widths, depth and minibatch group (:class:`DiscriminatorConfig`).
        image_size: side of the square input; the last map is ``image_size / 2**num_down_blocks``.
        in_channels: 3, or 3 + landmark channels when ``use_landmarks`` (the caller concatenates).
    """

    def __init__(self, config: DiscriminatorConfig, image_size: int, in_channels: int = 3) -> None:
        super().__init__()
        num_blocks = config.num_down_blocks
        final_size = image_size // 2**num_blocks
        if image_size % 2**num_blocks or final_size < 1:
            raise ValueError(
                f"discriminator: image_size={image_size} is not divisible by 2**num_down_blocks={2**num_blocks}"
            )
        self.config = config
        self.image_size = image_size
        self.in_channels = in_channels
        self.final_size = final_size
        channels = level_channels(config.base_channels, config.max_channels, num_blocks + 1)
        top = channels[-1]
        self.from_rgb = EqualConv2d(in_channels, channels[0], 1)
        self.blocks = nn.ModuleList(DownResBlock(channels[i], channels[i + 1]) for i in range(num_blocks))
        self.act = ScaledLeakyReLU(0.2)
        self.mbstd = MinibatchStdDev(config.mbstd_group_size)
        self.conv = EqualConv2d(top + 1, top, 3, padding=1)
        self.fc = EqualLinear(top * final_size * final_size, top)
        self.out = EqualLinear(top, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (b, in_channels, image_size, image_size) in [-1, 1] -> logits (b,)."""
        if tuple(x.shape[1:]) != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"StyleGAN2Discriminator expects (b, {self.in_channels}, {self.image_size}, {self.image_size}) "
                f"inputs, got {tuple(x.shape)}"
            )
        h = self.from_rgb(x)  # (b, base, s, s)
        for block in self.blocks:
            h = block(h)  # (b, c_i, s / 2**i, s / 2**i)
        h = self.mbstd(self.act(h))  # (b, max + 1, f, f)
        h = self.act(self.conv(h))  # (b, max, f, f)
        h = self.act(self.fc(torch.flatten(h, 1)))  # (b, max)
        return self.out(h).squeeze(1)  # (b,)
