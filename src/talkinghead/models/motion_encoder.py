"""E_w of MetaPortrait §3.1: the motion code z_w = E_w(x_in), x_in = I_s ++ L_s ++ L_d."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.metaportrait import MotionEncoderConfig
from talkinghead.models.widths import level_channels


class MotionEncoder(nn.Module):
    """Stride-2 3x3 convolutions with instance norm and LeakyReLU, global mean, a linear layer, L2 norm.

    The official encoder: six stride-2 convolutions 64 -> 512 and a 512-d code normalised to
    unit length (so z_w carries a direction, and AdaIN in F_w sees codes of one scale).

    Args:
        config: widths and depth.
        in_channels: channels of x_in (3 + 2 * landmark channels).
    """

    def __init__(self, config: MotionEncoderConfig, in_channels: int):
        super().__init__()
        widths = level_channels(config.base_channels, config.max_channels, config.num_down_blocks)
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, stride=2, padding=1),
                nn.InstanceNorm2d(width, affine=True),
                nn.LeakyReLU(0.2),
            ]
            channels = width
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, config.code_dim)

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        """(b, c_in, s, s) -> (b, code_dim) unit-length z_w."""
        features = self.convs(x_in).mean(dim=(2, 3))  # (b, C)
        return F.normalize(self.fc(features), dim=1)
