"""F_w of MetaPortrait §3.1: an hourglass modulated by z_w through AdaIN -> dense flow + occlusion."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.metaportrait import FlowNetworkConfig
from talkinghead.layers.adain import AdaIN
from talkinghead.models.widths import level_channels


class AdaINConvBlock(nn.Module):
    """conv 3x3 -> AdaIN(z_w) -> LeakyReLU: every block of F_w reads the motion code."""

    def __init__(self, in_channels: int, out_channels: int, code_dim: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.norm = AdaIN(out_channels, code_dim)

    def forward(self, x: torch.Tensor, z_w: torch.Tensor) -> torch.Tensor:
        """(b, c_in, h, w), (b, code_dim) -> (b, c_out, h / stride, w / stride)."""
        return F.leaky_relu(self.norm(self.conv(x), z_w), 0.2)


class FlowNetwork(nn.Module):
    """F_w: a U-Net of AdaIN conv blocks; the head predicts a flow and an occlusion map.

    ``w = F_w(x_in, z_w)``. The flow head starts at zero, so an untrained F_w returns the
    source unwarped (the identity flow) and training starts from the source image.

    Args:
        config: widths and depth.
        in_channels: channels of x_in.
        code_dim: size of z_w.
    """

    def __init__(self, config: FlowNetworkConfig, in_channels: int, code_dim: int):
        super().__init__()
        widths = level_channels(config.base_channels, config.max_channels, config.num_down_blocks + 1)
        self.stem = AdaINConvBlock(in_channels, widths[0], code_dim)
        self.down = nn.ModuleList(
            AdaINConvBlock(widths[i], widths[i + 1], code_dim, stride=2) for i in range(config.num_down_blocks)
        )
        self.middle = AdaINConvBlock(widths[-1], widths[-1], code_dim)
        # up block i goes from level i + 1 to level i, concatenating the skip of level i
        self.up = nn.ModuleList(
            AdaINConvBlock(widths[i + 1] + widths[i], widths[i], code_dim) for i in range(config.num_down_blocks)
        )
        self.flow_head = nn.Conv2d(widths[0], 2, 3, padding=1)
        self.occlusion_head = nn.Conv2d(widths[0], 1, 3, padding=1)
        nn.init.zeros_(self.flow_head.weight)
        nn.init.zeros_(self.flow_head.bias)
        nn.init.zeros_(self.occlusion_head.weight)
        nn.init.constant_(self.occlusion_head.bias, 3.0)  # sigmoid(3) ~ 0.95: start with little occluded

    def forward(self, x_in: torch.Tensor, z_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, c_in, s, s), (b, code_dim) -> flow (b, 2, s, s) in normalised units, occlusion (b, 1, s, s) in (0, 1)."""
        x = self.stem(x_in, z_w)
        skips = [x]
        for block in self.down:
            x = block(x, z_w)
            skips.append(x)
        x = self.middle(skips.pop(), z_w)
        for block in reversed(self.up):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1), z_w)
        return self.flow_head(x), torch.sigmoid(self.occlusion_head(x))
