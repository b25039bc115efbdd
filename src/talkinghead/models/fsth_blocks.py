"""FSTH's residual blocks (A.4, after BigGAN): pre-activated, spectrally normalised, avg-pool down, nearest up.

Every convolution is spectrally normalised (§3.4). Skips are identities unless the width or
the resolution changes, then they hold a 1x1 convolution ("a linear layer inside").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.layers.spectral import sn_conv2d


class ResidualDownBlock(nn.Module):
    """``[norm, ReLU,] conv3x3, norm, ReLU, conv3x3, avg-pool 2`` plus a 1x1-conv, avg-pooled skip.

    Args:
        in_channels, out_channels: widths.
        use_norm: instance norm (with affine parameters) before each activation (the
            generator's down blocks); E and D have no normalisation.
        preactivate: start with norm + ReLU; the first block of a network reads the raw
            input and starts with its convolution ("a regular residual block", A.4).
        downsample: halve the resolution (False: a block at constant resolution, D's 4x4 one).
    """

    def __init__(self, in_channels: int, out_channels: int, *, use_norm: bool = False, preactivate: bool = True,
                 downsample: bool = True) -> None:
        super().__init__()
        self.preactivate = preactivate
        self.downsample = downsample
        self.norm1 = nn.InstanceNorm2d(in_channels, affine=True) if (use_norm and preactivate) else nn.Identity()
        self.conv1 = sn_conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.InstanceNorm2d(out_channels, affine=True) if use_norm else nn.Identity()
        self.conv2 = sn_conv2d(out_channels, out_channels, 3, padding=1)
        changes = downsample or in_channels != out_channels
        self.skip = sn_conv2d(in_channels, out_channels, 1) if changes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, C_in, h, w) -> (b, C_out, h/2, w/2) (or (h, w) without downsampling)."""
        h = F.relu(self.norm1(x)) if self.preactivate else x
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        skip = x if self.skip is None else self.skip(x)
        if self.downsample:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class AdaptiveInstanceNorm(nn.Module):
    """Instance norm whose affine coefficients are given per sample: ``IN(x) * (1 + scale) + bias``.

    The coefficients are a slice of the person-specific parameters psi_hat = P e (§3.1);
    ``1 + scale`` keeps a zero slice an identity affine.

    Args:
        num_features: C.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    @property
    def num_params(self) -> int:
        """Entries of psi this norm reads: C scales then C biases."""
        return 2 * self.num_features

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """x (b, C, h, w), params (b, 2C) -> (b, C, h, w)."""
        scale, bias = params.to(x.dtype).chunk(2, dim=1)
        return F.instance_norm(x) * (1.0 + scale[:, :, None, None]) + bias[:, :, None, None]

    def extra_repr(self) -> str:
        return str(self.num_features)


class AdaptiveResidualBlock(nn.Module):
    """``AdaIN, ReLU, conv3x3, AdaIN, ReLU, conv3x3 [, up 2x]`` plus a skip (1x1 conv when shapes change).

    The generator's bottleneck (``upsample=False``) and upsampling blocks; upsampling comes at
    the end of the block (A.4).

    Args:
        in_channels, out_channels: widths.
        upsample: double the resolution (nearest) at the end.
    """

    def __init__(self, in_channels: int, out_channels: int, *, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1 = AdaptiveInstanceNorm(in_channels)
        self.conv1 = sn_conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = AdaptiveInstanceNorm(out_channels)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = sn_conv2d(in_channels, out_channels, 1) if (upsample or in_channels != out_channels) else None

    @property
    def num_params(self) -> int:
        """Entries of psi the block's two norms read."""
        return self.norm1.num_params + self.norm2.num_params

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """x (b, C_in, h, w), params (b, num_params) -> (b, C_out, h', w')."""
        p1, p2 = params.split([self.norm1.num_params, self.norm2.num_params], dim=1)
        h = self.conv1(F.relu(self.norm1(x, p1)))
        h = self.conv2(F.relu(self.norm2(h, p2)))
        skip = x if self.skip is None else self.skip(x)
        if self.upsample:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            skip = F.interpolate(skip, scale_factor=2.0, mode="nearest")
        return h + skip
