"""D of MetaPortrait §3.1: pix2pixHD's multi-scale patch discriminator (with features for feature matching)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.metaportrait import PatchDiscriminatorConfig


class PatchDiscriminator(nn.Module):
    """One scale: 4x4 convs (stride 2, then 1), instance norm, LeakyReLU; a 1-channel patch map last."""

    def __init__(self, config: PatchDiscriminatorConfig, in_channels: int):
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, config.base_channels, 4, 2, 1), nn.LeakyReLU(0.2))]
        channels = config.base_channels
        for i in range(1, config.num_layers + 1):
            width = min(channels * 2, config.max_channels)
            stride = 2 if i < config.num_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(channels, width, 4, stride, 1), nn.InstanceNorm2d(width),
                                        nn.LeakyReLU(0.2)))
            channels = width
        blocks.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(b, c, h, w) -> every block's output; the last is the (b, 1, h', w') patch logits."""
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class MultiScalePatchDiscriminator(nn.Module):
    """``num_scales`` patch discriminators, scale i seeing the input average-pooled i times (pix2pixHD).

    Args:
        config: widths, depth and scales.
        in_channels: 3, plus the landmark channels when D is conditional.
    """

    def __init__(self, config: PatchDiscriminatorConfig, in_channels: int):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(config, in_channels) for _ in range(config.num_scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """(b, c, h, w) -> per scale, the list of features (the last: patch logits)."""
        out = []
        for i, scale in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(scale(x))
        return out
