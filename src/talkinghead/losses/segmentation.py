"""Layout supervision of LSR's pre-training stage (LSR Eq. 2): cross-entropy against the oracle."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Pixel-wise cross-entropy ``X-ent(y_t^l, S_t)`` between predicted and oracle segmentations.

    Args:
        logits: (b, C, h, w) unnormalised class scores of G_l's layout.
        target: (b, H, W) int64 class indices of the oracle segmentation. When (H, W) differs
            from (h, w), it is resized to (h, w) with nearest-neighbour sampling (labels must
            not be interpolated).
        ignore_index: label whose pixels do not count.

    Returns:
        Scalar fp32 loss, mean over the counted pixels.
    """
    if logits.ndim != 4 or target.ndim != 3 or logits.shape[0] != target.shape[0]:
        raise ValueError(
            f"segmentation_loss expects logits (b, C, h, w) and target (b, h, w), "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if target.shape[-2:] != logits.shape[-2:]:
        # Labels are small integers, exact in fp32.
        resized = F.interpolate(target[:, None].float(), size=logits.shape[-2:], mode="nearest")
        target = resized[:, 0].round().long()
    return F.cross_entropy(logits.float(), target.long(), ignore_index=ignore_index)
