"""Eye and mouth masks from iBUG-68 landmarks, and the L1 loss inside them (MetaPortrait L_eye, L_mouth)."""

from __future__ import annotations

import torch

# iBUG-68 indices of each region.
LEFT_EYE = tuple(range(36, 42))
RIGHT_EYE = tuple(range(42, 48))
MOUTH = tuple(range(48, 68))


def box_mask(points: torch.Tensor, indices: tuple[int, ...], size: int, margin: float = 0.3) -> torch.Tensor:
    """(b, 1, size, size) mask, 1 inside the box around ``points[:, indices]`` grown by ``margin`` of its side.

    Args:
        points: (b, 68, 2) landmarks (x, y) in pixels of the (size, size) image.
        indices: the region's landmark indices.
        size: image side.
        margin: growth on each side, as a fraction of the box's larger side (at least 1 px).
    """
    region = points[:, list(indices), :2].float()  # (b, n, 2)
    low, high = region.min(dim=1).values, region.max(dim=1).values  # (b, 2)
    grow = ((high - low).max(dim=1, keepdim=True).values * margin).clamp(min=1.0)  # (b, 1)
    low, high = low - grow, high + grow
    coords = torch.arange(size, device=points.device, dtype=torch.float32)
    inside_x = (coords[None] >= low[:, :1]) & (coords[None] <= high[:, :1])  # (b, size)
    inside_y = (coords[None] >= low[:, 1:]) & (coords[None] <= high[:, 1:])  # (b, size)
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]


def eye_mask(points: torch.Tensor, size: int) -> torch.Tensor:
    """(b, 1, size, size) union of both eye boxes."""
    return torch.maximum(box_mask(points, LEFT_EYE, size), box_mask(points, RIGHT_EYE, size))


def mouth_mask(points: torch.Tensor, size: int) -> torch.Tensor:
    """(b, 1, size, size) mouth box."""
    return box_mask(points, MOUTH, size)


def masked_l1(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |output - target| over the masked pixels (all channels); 0 where no mask; scalar fp32."""
    diff = (output.float() - target.float()).abs() * mask
    return diff.sum() / (mask.sum() * output.shape[1]).clamp(min=1.0)
