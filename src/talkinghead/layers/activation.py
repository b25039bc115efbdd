"""Variance-preserving leaky ReLU of the equalised-learning-rate networks (StyleGAN2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ScaledLeakyReLU(nn.Module):
    """Leaky ReLU followed by a constant gain (StyleGAN2's ``FusedLeakyReLU`` without its bias).

    Equalised layers (:mod:`talkinghead.layers.equalized`) initialise with variance 1 / fan_in;
    the default gain sqrt(2) is He's ReLU correction, so a stack of equalised convolutions
    and these activations keeps unit-variance features at initialisation.

    Args:
        negative_slope: slope for negative inputs (0.2 everywhere in LSR).
        gain: multiplier applied after the activation.
    """

    def __init__(self, negative_slope: float = 0.2, gain: float = math.sqrt(2.0)) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Any shape -> same shape."""
        return F.leaky_relu(x, self.negative_slope) * self.gain

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}, gain={self.gain:.4f}"
