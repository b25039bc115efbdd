"""Sample grids for training logs: one row per kind of image, one column per example."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from talkinghead.data.segmentation_classes import PALETTE


def colorize_layout(layout: torch.Tensor) -> torch.Tensor:
    """Picture of a soft or latent layout: each pixel gets the colour of its strongest channel.

    Args:
        layout: (b, C, h, w) probabilities or logits.

    Returns:
        (b, 3, h, w) float image in [-1, 1] (the range :func:`make_grid` takes). Channel i
        is drawn in the segmentation palette's colour i, cycled when C exceeds the palette.
    """
    if layout.ndim != 4:
        raise ValueError(f"colorize_layout: expected a (b, C, h, w) layout, got shape {tuple(layout.shape)}")
    labels = layout.detach().argmax(dim=1)  # (b, h, w)
    palette = torch.from_numpy(PALETTE.astype(np.float32) / 127.5 - 1.0).to(layout.device)  # (P, 3)
    colours = palette[labels % len(palette)]  # (b, h, w, 3)
    return colours.permute(0, 3, 1, 2).contiguous()


def _to_rgb(images: torch.Tensor, size: tuple[int, int], where: str) -> torch.Tensor:
    """(b, c, h, w) or (c, h, w) in [-1, 1] -> (b, 3, *size) float32 on the CPU."""
    images = images.detach().to("cpu", torch.float32)
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"make_grid: {where} must be (b, c, h, w), got shape {tuple(images.shape)}")
    channels = images.shape[1]
    if channels == 1:
        images = images.expand(-1, 3, -1, -1)
    elif channels != 3:
        raise ValueError(
            f"make_grid: {where} has {channels} channels; give 1 or 3 (draw layouts with colorize_layout)"
        )
    if tuple(images.shape[-2:]) != size:
        shrinking = images.shape[-2] > size[0] or images.shape[-1] > size[1]
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    return images


def make_grid(rows: Sequence[torch.Tensor], padding: int = 2) -> torch.Tensor:
    """Lay out rows of images in one picture.

    Args:
        rows: each (b, c, h, w) in [-1, 1] with c = 1 or 3, drawn as one row of b images
            (for LSR: sources | landmarks | layout | output | ground truth). Images are
            resized to the first row's size; rows shorter than the longest stay black on
            the right.
        padding: black pixels between and around the images.

    Returns:
        (3, H, W) uint8 picture.
    """
    if not rows:
        raise ValueError("make_grid: no rows given")
    first = rows[0] if rows[0].ndim == 4 else rows[0].unsqueeze(0)
    size = (int(first.shape[-2]), int(first.shape[-1]))
    converted = [_to_rgb(row, size, f"row {i}") for i, row in enumerate(rows)]
    num_columns = max(row.shape[0] for row in converted)
    height, width = size
    grid = torch.zeros(
        3, padding + len(converted) * (height + padding), padding + num_columns * (width + padding), dtype=torch.uint8
    )
    for r, row in enumerate(converted):
        pixels = ((row.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
        top = padding + r * (height + padding)
        for c, image in enumerate(pixels):
            left = padding + c * (width + padding)
            grid[:, top : top + height, left : left + width] = image
    return grid
