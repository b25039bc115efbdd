"""Image-pyramid L1: the offline stand-in for a VGG perceptual loss when VGG19 is not installed."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pyramid_l1(output: torch.Tensor, target: torch.Tensor, num_scales: int = 4) -> torch.Tensor:
    """Mean over ``num_scales`` scales (each 2x average-pooled) of the L1 distance; scalar fp32.

    Coarse scales weigh low-frequency (colour, layout) errors as much as the full scale weighs
    pixel errors, which a plain L1 does not; the 4 scales mirror the official loss's 4 image
    scales of VGG features.

    Args:
        output, target: (b, c, h, w) images.
    """
    if output.shape != target.shape:
        raise ValueError(f"pyramid_l1: output {tuple(output.shape)} and target {tuple(target.shape)} differ")
    loss = output.new_zeros((), dtype=torch.float32)
    x, y = output.float(), target.float()
    for scale in range(num_scales):
        if scale:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        loss = loss + F.l1_loss(x, y)
        if min(x.shape[-2:]) < 2:
            break
    return loss / num_scales
