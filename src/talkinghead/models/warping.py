"""Backward warping with a dense flow field (MetaPortrait §3.1: I~_s = w(I_s)), 4-D ``grid_sample`` only.

The flow is a displacement in normalised coordinates ([-1, 1] across the image, ``x`` then
``y``), added to the identity sampling grid: output pixel p reads the source at
``p + flow(p)``. Only the 4-D form of ``grid_sample`` is used (bilinear, border padding),
because the 5-D one is what blocks ONNX export of 3-D-warping models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def identity_grid(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, h, w, 2) sampling grid that reads every pixel centre in place (``align_corners=False``)."""
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)[None]


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(b, 2, h, w) flow at another resolution; normalised displacements need no rescaling."""
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False)


def warp(source: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp ``source`` (b, c, h, w) by ``flow`` (b, 2, h', w') -> (b, c, h, w).

    The flow is resized to the source's resolution first, so one flow warps the image and
    every feature map of it.
    """
    if source.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"warp: expected (b, c, h, w) source and (b, 2, h, w) flow, got {tuple(source.shape)} "
                         f"and {tuple(flow.shape)}")
    h, w = source.shape[-2:]
    flow = resize_flow(flow, (h, w)).to(source.dtype)
    grid = identity_grid(h, w, device=source.device, dtype=source.dtype) + flow.permute(0, 2, 3, 1)  # (b, h, w, 2)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)


def correspondence_flow(source_inverse_field: torch.Tensor, driving_forward_field: torch.Tensor) -> torch.Tensor:
    """Flow from the mesh's coordinate fields: where each driving pixel's face point lies in the source.

    Args:
        source_inverse_field: (b, 2, s, s) for each canonical pixel, its position in the source.
        driving_forward_field: (b, 2, s, s) for each driving pixel, its canonical position.

    Returns:
        (b, 2, s, s) displacement in normalised units, for :func:`warp`: ``G_s(U_d(p)) - p``.
    """
    grid = driving_forward_field.permute(0, 2, 3, 1)  # (b, s, s, 2)
    position = F.grid_sample(source_inverse_field, grid.to(source_inverse_field.dtype), mode="bilinear",
                             padding_mode="border", align_corners=False)
    h, w = position.shape[-2:]
    return position - identity_grid(h, w, device=position.device, dtype=position.dtype).permute(0, 3, 1, 2)


# Compare-exchange pairs of a sorting network that leaves the median of nine values at index 4
# (the classic 19-exchange median-of-9 network; exchanges that cannot move the median are omitted).
_MEDIAN9_EXCHANGES = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8),
                      (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median_of_nine(values: list[torch.Tensor]) -> torch.Tensor:
    """The elementwise median of nine same-shaped tensors (min / max only: fast, and exports to ONNX)."""
    v = list(values)
    for i, j in _MEDIAN9_EXCHANGES:
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return v[4]


# A flow vector further than this (in pixels of its grid) from the median of its 3 x 3
# neighbourhood is an outlier of the mesh correspondence, not motion.
OUTLIER_PIXELS = 1.5


def despeckle_flow(flow: torch.Tensor, threshold: float = OUTLIER_PIXELS) -> torch.Tensor:
    """(b, 2, h, w) flow with its isolated outliers replaced by their 3 x 3 median.

    The mesh correspondence (:func:`correspondence_flow`) has single stray vectors where the
    face outline meets the border anchors (a sliver triangle of the rasterised mesh); each
    samples the photo several pixels away and leaves a dark dot or a stair step at the cheek,
    at every output size. Smooth motion is left exactly as it is.
    """
    b, c, h, w = flow.shape
    to_pixels = torch.tensor([w / 2.0, h / 2.0], device=flow.device, dtype=flow.dtype)[None, :, None, None]
    pixels = flow * to_pixels
    padded = F.pad(pixels, (1, 1, 1, 1), mode="replicate")
    median = median_of_nine([padded[:, :, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])
    outlier = (pixels - median).norm(dim=1, keepdim=True) > threshold
    return torch.where(outlier, median / to_pixels, flow)
