"""Spatially-adaptive denormalisation (SPADE, Park et al. 2019, §3), with instance norm as in LSR.

LSR's G_s (A.1) feeds every SPADE the concatenation of the predicted layout and the
landmark image; the layout is soft (a softmax, later a learned latent map), so it is resized
with area averaging when it is larger than the features and bilinearly when it is smaller,
never with SPADE's nearest neighbour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.layers.equalized import EqualConv2d
from talkinghead.layers.inference_rewrites import pair_convs, register_inference_rewrite


def resize_condition(cond: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a soft spatial condition: area average to shrink, bilinear to enlarge.

    Area averaging is the anti-aliased choice for downsampling (a softmax layout keeps
    summing to 1 over its channels); it also works in bfloat16 on the CPU, where
    antialiased bilinear does not.

    Args:
        cond: (b, c, H, W).
        size: target (h, w).

    Returns:
        (b, c, h, w); ``cond`` itself when it already has that size.
    """
    if tuple(cond.shape[-2:]) == tuple(size):
        return cond
    if cond.shape[-2] >= size[0] and cond.shape[-1] >= size[1]:
        return F.interpolate(cond, size=size, mode="area")
    return F.interpolate(cond, size=size, mode="bilinear", align_corners=False)


class SPADE(nn.Module):
    """Parameter-free instance norm, then ``(1 + gamma(cond)) * x + beta(cond)`` per pixel.

    gamma and beta come from a small equalised conv net on the condition: a shared conv and
    a ReLU, then one conv for each. The convs zero-pad their input, so a constant condition
    gives constant gamma and beta except in a border of ``kernel_size // 2`` pixels per conv.

    Args:
        num_features: channels C of the normalised input.
        cond_channels: channels of the spatial condition.
        hidden_channels: feature maps of the shared conv (LSR: 64; SPADE: 128).
        kernel_size: kernel of the three convs.
    """

    conditional = True

    def __init__(self, num_features: int, cond_channels: int, hidden_channels: int = 64, kernel_size: int = 3) -> None:
        super().__init__()
        self.num_features = num_features
        self.cond_channels = cond_channels
        pad = kernel_size // 2
        self.shared = nn.Sequential(
            EqualConv2d(cond_channels, hidden_channels, kernel_size, padding=pad),
            nn.ReLU(),
        )
        self.gamma = EqualConv2d(hidden_channels, num_features, kernel_size, padding=pad)
        self.beta = EqualConv2d(hidden_channels, num_features, kernel_size, padding=pad)

    def affine_params(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition (b, cond_channels, h, w) -> scale (b, C, h, w) and bias (b, C, h, w)."""
        hidden = self.shared(cond)  # (b, hidden, h, w)
        return 1.0 + self.gamma(hidden), self.beta(hidden)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, C, h, w) and cond (b, cond_channels, H, W), resized to (h, w) -> (b, C, h, w)."""
        if cond is None:
            raise ValueError("SPADE needs its spatial condition: call norm(x, cond=map) with a (b, c, H, W) map")
        scale, bias = self.affine_params(resize_condition(cond, x.shape[-2:]))
        return F.instance_norm(x) * scale + bias

    def extra_repr(self) -> str:
        return f"{self.num_features}, cond_channels={self.cond_channels}"


class FusedSPADE(SPADE):
    """:class:`SPADE` whose gamma and beta run as one convolution (its exact inference rewrite).

    gamma and beta read the same hidden map, so one convolution with both output channel
    sets computes them, with the ``1 +`` of ``(1 + gamma) * x`` folded into gamma's bias:
    the same products and sums per output channel.
    """

    def affine_params(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition (b, cond_channels, h, w) -> scale (b, C, h, w) = 1 + gamma and bias (b, C, h, w) = beta."""
        hidden = self.shared(cond)
        both = F.conv2d(hidden, self.paired_weight, self.paired_bias, padding=self.gamma.padding)  # (b, 2C, h, w)
        return both[:, : self.num_features], both[:, self.num_features:]


register_inference_rewrite(SPADE, "spade", lambda module: pair_convs(module, FusedSPADE, "gamma", "beta"))
