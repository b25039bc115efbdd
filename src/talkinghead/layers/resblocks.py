"""Residual blocks shared by the LSR networks; every conv is equalised.

* :class:`DownResBlock`: halves the resolution; E_l / E_s (the residual blocks of BigGAN's
  discriminator with blur pooling instead of average pooling, LSR A.1), G_l's contracting
  path (with AdaIN) and D (StyleGAN2's residual block).
* :class:`UpResBlock`: doubles the resolution (bilinear) or keeps it; G_l's expanding path
  (BigGAN's generator block with instance norm + AdaIN instead of conditional batch norm).
* :class:`SPADEResBlock`: SPADE's residual block (Park et al. 2019, Fig. 4) with instance norm.

All sums of a residual and its shortcut are scaled by 1/sqrt(2), as in StyleGAN2's
discriminator, so that with :class:`ScaledLeakyReLU` unit-variance features stay so at
initialisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.layers.activation import ScaledLeakyReLU
from talkinghead.layers.blur import Blur, BlurPool2d
from talkinghead.layers.conditional_norm import build_norm
from talkinghead.layers.equalized import EqualConv2d
from talkinghead.layers.spade import SPADE

RESIDUAL_GAIN = 1.0 / math.sqrt(2.0)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear upsampling by 2: (b, c, h, w) -> (b, c, 2h, 2w)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class DownResBlock(nn.Module):
    """Pre-activation residual block that halves the resolution with blur pooling.

    Main path: [norm] -> LReLU -> conv3x3 (in -> in) -> [norm] -> LReLU -> conv3x3 (in -> out)
    -> BlurPool2d. Shortcut: BlurPool2d -> conv1x1 (in -> out, no bias). Sum times 1/sqrt(2).

    The last conv and the blur pool are computed as StyleGAN2 does: blur, then a stride-2
    conv. Both are linear, so this equals conv3x3 followed by BlurPool2d (up to the zero
    padding of the borders) at a quarter of the cost. The channels change in the second conv,
    at half resolution, as in StyleGAN2.

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        norm: norm before each activation (see :func:`build_norm`), ``none`` by default.
        norm_kwargs: the norm's arguments (``{"latent_dim": 512}`` for ``adain``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "none", norm_kwargs: dict | None = None
    ) -> None:
        super().__init__()
        norm_kwargs = norm_kwargs or {}
        self.norm1 = build_norm(norm, in_channels, **norm_kwargs)
        self.conv1 = EqualConv2d(in_channels, in_channels, 3, padding=1)
        self.norm2 = build_norm(norm, in_channels, **norm_kwargs)
        # Blur padded by 2 then a valid stride-2 3x3 conv: (h, w) -> (h // 2, w // 2).
        self.blur = Blur(padding=(2, 2))
        self.conv2 = EqualConv2d(in_channels, out_channels, 3, stride=2)
        self.skip_pool = BlurPool2d()
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)
        self.act = ScaledLeakyReLU(0.2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, in, h, w), cond for the norm -> (b, out, h // 2, w // 2)."""
        h = self.conv1(self.act(self.norm1(x, cond)))  # (b, in, h, w)
        h = self.conv2(self.blur(self.act(self.norm2(h, cond))))  # (b, out, h/2, w/2)
        skip = self.skip(self.skip_pool(x))  # (b, out, h/2, w/2)
        return (h + skip) * RESIDUAL_GAIN


class UpResBlock(nn.Module):
    """Pre-activation residual block that doubles the resolution (bilinear) or keeps it.

    Main path: [norm] -> LReLU -> [up x2] -> conv3x3 (in -> out) -> [norm] -> LReLU -> conv3x3
    (out -> out). Shortcut: identity, or conv1x1 (in -> out, no bias) when the channels
    differ, then [up x2] (the 1x1 conv runs before upsampling: it commutes with it and is
    cheaper there). Sum times 1/sqrt(2).

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        norm: norm before each activation (see :func:`build_norm`); G_l uses ``adain``.
        norm_kwargs: the norm's arguments (``{"latent_dim": 512}`` for ``adain``).
        upsample: double the resolution; False gives a block at constant resolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str = "none",
        norm_kwargs: dict | None = None,
        upsample: bool = True,
    ) -> None:
        super().__init__()
        norm_kwargs = norm_kwargs or {}
        self.upsample = upsample
        self.norm1 = build_norm(norm, in_channels, **norm_kwargs)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = build_norm(norm, out_channels, **norm_kwargs)
        self.conv2 = EqualConv2d(out_channels, out_channels, 3, padding=1)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False) if in_channels != out_channels else None
        self.act = ScaledLeakyReLU(0.2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, in, h, w), cond for the norm -> (b, out, 2h, 2w), or (b, out, h, w) without upsampling."""
        h = self.act(self.norm1(x, cond))
        if self.upsample:
            h = upsample2x(h)
        h = self.conv1(h)  # (b, out, H, W)
        h = self.conv2(self.act(self.norm2(h, cond)))  # (b, out, H, W)
        skip = x if self.skip is None else self.skip(x)  # (b, out, h, w)
        if self.upsample:
            skip = upsample2x(skip)
        return (h + skip) * RESIDUAL_GAIN


class SPADEResBlock(nn.Module):
    """SPADE residual block (Park et al. 2019) with instance norm; resolution unchanged.

    Main path: SPADE -> LReLU -> conv3x3 (in -> mid) -> SPADE -> LReLU -> conv3x3 (mid -> out),
    mid = min(in, out). Shortcut: identity, or its own SPADE -> conv1x1 (no bias) when the
    channels differ. Sum times 1/sqrt(2) (SPADE adds without scaling; the scale keeps the
    output variance from growing with depth at initialisation).

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        cond_channels: channels of the spatial condition (LSR: layout + landmark image).
        hidden_channels: feature maps inside every SPADE (LSR: 64).
        kernel_size: kernel of the SPADE convs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int,
        hidden_channels: int = 64,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        mid_channels = min(in_channels, out_channels)
        self.norm1 = SPADE(in_channels, cond_channels, hidden_channels, kernel_size)
        self.conv1 = EqualConv2d(in_channels, mid_channels, 3, padding=1)
        self.norm2 = SPADE(mid_channels, cond_channels, hidden_channels, kernel_size)
        self.conv2 = EqualConv2d(mid_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.norm_skip = SPADE(in_channels, cond_channels, hidden_channels, kernel_size)
            self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)
        else:
            self.norm_skip = None
            self.skip = None
        self.act = ScaledLeakyReLU(0.2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (b, in, h, w), cond (b, cond_channels, H, W) resized to (h, w) -> (b, out, h, w)."""
        h = self.conv1(self.act(self.norm1(x, cond)))  # (b, mid, h, w)
        h = self.conv2(self.act(self.norm2(h, cond)))  # (b, out, h, w)
        skip = x if self.skip is None else self.skip(self.norm_skip(x, cond))  # (b, out, h, w)
        return (h + skip) * RESIDUAL_GAIN
