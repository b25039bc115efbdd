"""FAN: the stacked-hourglass 2-D face alignment network (Bulat & Tzimiropoulos, ICCV 2017).

The module names reproduce the layout of the face-alignment package's released
``2DFAN4-11f355bf06.pth.tar`` (``conv1``, ``bn1``, ``conv2``..``conv4``, per stack ``m{i}``,
``top_m_{i}``, ``conv_last{i}``, ``bn_end{i}``, ``l{i}``, ``bl{i}``, ``al{i}``), so that file loads
into :class:`FAN` with ``strict=True``. The papers (LSR, FSTH) take their 68 landmarks from it.

Layout of one stack (``num_features`` = 256 channels at 64x64)::

    x -> HourGlass(depth 4) -> ConvBlock -> 1x1 conv -> BN -> ReLU -> 1x1 conv -> heatmaps (68)
    and, except after the last stack, x + 1x1(features) + 1x1(heatmaps) feeds the next stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_LANDMARKS = 68


class ConvBlock(nn.Module):
    """Hierarchical, parallel and multi-scale residual block of FAN (pre-activation).

    Three 3x3 convolutions in a chain produce ``out/2``, ``out/4`` and ``out/4`` channels; their
    outputs are concatenated (``out`` channels) and added to the input, which goes through a
    BN-ReLU-1x1 projection when the channel count changes.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output; must be divisible by 4.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError(f"ConvBlock out_channels must be divisible by 4, got {out_channels}")
        half, quarter = out_channels // 2, out_channels // 4
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, half, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, quarter, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = nn.Conv2d(quarter, quarter, 3, padding=1, bias=False)
        # Index 1 of the released 'downsample' Sequential is a parameter-free ReLU, so the
        # checkpoint holds downsample.0.* (BN) and downsample.2.weight (conv).
        self.downsample: nn.Sequential | None = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.BatchNorm2d(in_channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in, h, w) -> (b, out, h, w)."""
        out1 = self.conv1(F.relu(self.bn1(x)))  # (b, out/2, h, w)
        out2 = self.conv2(F.relu(self.bn2(out1)))  # (b, out/4, h, w)
        out3 = self.conv3(F.relu(self.bn3(out2)))  # (b, out/4, h, w)
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat((out1, out2, out3), dim=1) + residual


class HourGlass(nn.Module):
    """Recursive hourglass of ConvBlocks (Newell et al. 2016) as FAN builds it.

    Level ``n`` holds ``b1_n`` (skip branch at the current resolution), ``b2_n`` (after a 2x2
    average pool), then level ``n - 1`` (or ``b2_plus_1`` at the bottom), then ``b3_n``, whose
    output is upsampled (nearest) and added to the skip branch.

    Args:
        depth: number of levels (FAN uses 4: 64 -> 32 -> 16 -> 8 -> 4 pixels).
        num_features: channels throughout.
    """

    def __init__(self, depth: int = 4, num_features: int = 256) -> None:
        super().__init__()
        self.depth = depth
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", ConvBlock(num_features, num_features))
            self.add_module(f"b2_{level}", ConvBlock(num_features, num_features))
            self.add_module(f"b3_{level}", ConvBlock(num_features, num_features))
        self.add_module("b2_plus_1", ConvBlock(num_features, num_features))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        # x: (b, c, h, w) with h and w divisible by 2 ** level
        skip = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))  # (b, c, h/2, w/2)
        if level > 1:
            low = self._level(level - 1, low)
        else:
            low = self._modules["b2_plus_1"](low)
        low = self._modules[f"b3_{level}"](low)
        return skip + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, h, w) -> (b, c, h, w); h and w must be divisible by ``2 ** depth``."""
        return self._level(self.depth, x)


class FAN(nn.Module):
    """Face Alignment Network: stem plus ``num_stacks`` hourglasses, one heatmap set per stack.

    The released 2DFAN4 weights take RGB in [0, 1] at 256x256 (no mean/std normalisation) and
    predict 68 heatmaps at 64x64. The network is fully convolutional: any input whose sides
    are divisible by 64 works (heatmaps come out at a quarter of the input size).

    Args:
        num_stacks: number of hourglass stacks (4 for 2DFAN4).
        num_landmarks: heatmaps per stack (68 for the released weights).
    """

    def __init__(self, num_stacks: int = 4, num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.num_stacks = num_stacks
        self.num_landmarks = num_landmarks
        features = 256
        # Stem: 256x256 -> 128x128 (strided 7x7 conv) -> 64x64 (average pool after conv2).
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, features)
        for i in range(num_stacks):
            self.add_module(f"m{i}", HourGlass(depth=4, num_features=features))
            self.add_module(f"top_m_{i}", ConvBlock(features, features))
            self.add_module(f"conv_last{i}", nn.Conv2d(features, features, kernel_size=1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(features))
            self.add_module(f"l{i}", nn.Conv2d(features, num_landmarks, kernel_size=1))
            if i < num_stacks - 1:
                # Intermediate supervision is fed back: features (bl) and heatmaps (al).
                self.add_module(f"bl{i}", nn.Conv2d(features, features, kernel_size=1))
                self.add_module(f"al{i}", nn.Conv2d(num_landmarks, features, kernel_size=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Heatmaps of every stack.

        Args:
            x: (b, 3, H, W) RGB in [0, 1]; H and W divisible by 64 (256 for the released weights).

        Returns:
            ``num_stacks`` tensors of shape (b, num_landmarks, H/4, W/4); the last is the
            prediction, the others are the intermediate supervision outputs.
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 64 or x.shape[3] % 64:
            raise ValueError(f"FAN expects (b, 3, H, W) with H and W divisible by 64, got {tuple(x.shape)}")
        x = F.relu(self.bn1(self.conv1(x)))  # (b, 64, H/2, W/2)
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)  # (b, 128, H/4, W/4)
        x = self.conv4(self.conv3(x))  # (b, 256, H/4, W/4)
        previous = x
        outputs: list[torch.Tensor] = []
        for i in range(self.num_stacks):
            features = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
            features = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](features)))
            heatmaps = self._modules[f"l{i}"](features)  # (b, num_landmarks, H/4, W/4)
            outputs.append(heatmaps)
            if i < self.num_stacks - 1:
                previous = previous + self._modules[f"bl{i}"](features) + self._modules[f"al{i}"](heatmaps)
        return outputs
