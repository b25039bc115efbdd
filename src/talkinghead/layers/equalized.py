"""Equalised learning rate (Karras et al. 2018, ProGAN §4.1; StyleGAN2 keeps it).

The weights are stored as N(0, 1) / ``lr_mul`` and multiplied at run time by
``lr_mul / sqrt(fan_in)``. The effective weights then start with He-like variance
1 / fan_in whatever the layer's size, and Adam's update (which is about the same size for
every stored parameter) moves every layer's effective weights at the same relative speed.
``lr_mul`` scales both the gradient and the update of the effective weights (StyleGAN's
mapping network uses 0.01). The He gain sqrt(2) of a ReLU-like nonlinearity is not in the
weights: it lives in :class:`~talkinghead.layers.activation.ScaledLeakyReLU`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.layers.inference_rewrites import register_inference_rewrite


class EqualConv2d(nn.Module):
    """2-D convolution with an equalised learning rate.

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: side of the square kernel.
        stride: convolution stride.
        padding: zero padding on every side.
        bias: add a learned bias (initialised to 0).
        lr_mul: learning-rate multiplier of the weights and the bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        lr_mul: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.lr_mul = lr_mul
        # (out, in, k, k), stored N(0, 1) / lr_mul; the effective weight is weight * scale.
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.scale = lr_mul / math.sqrt(in_channels * kernel_size * kernel_size)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def effective_parameters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight (out, in, k, k) and bias (out,) the convolution applies: stored ones scaled."""
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return self.weight * self.scale, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in, h, w) -> (b, out, (h + 2 pad - k) / stride + 1, same for w)."""
        weight, bias = self.effective_parameters()
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}, lr_mul={self.lr_mul}"
        )


class FoldedEqualConv2d(EqualConv2d):
    """:class:`EqualConv2d` with ``weight * scale`` computed once (its exact inference rewrite).

    Exact up to the rounding of one multiplication, done once instead of on every call.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.folded_weight, self.folded_bias, stride=self.stride, padding=self.padding)


def _fold_scale(module: nn.Module) -> None:
    weight, bias = module.effective_parameters()
    module.register_buffer("folded_weight", weight.detach().clone(), persistent=False)
    module.register_buffer("folded_bias", None if bias is None else bias.detach().clone(), persistent=False)
    module.__class__ = FoldedEqualConv2d


register_inference_rewrite(EqualConv2d, "equal_conv", _fold_scale)


class EqualLinear(nn.Module):
    """Fully connected layer with an equalised learning rate.

    Args:
        in_features: input size.
        out_features: output size.
        bias: add a learned bias.
        bias_init: initial value of the effective bias (the stored one is ``bias_init / lr_mul``).
        lr_mul: learning-rate multiplier of the weights and the bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.lr_mul = lr_mul
        # (out, in), stored N(0, 1) / lr_mul.
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.scale = lr_mul / math.sqrt(in_features)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out)."""
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, lr_mul={self.lr_mul}"
