"""Where the mouth is: a square crop around it, the inner-lip region, and pasting a crop back.

Everything works on mediapipe's 478 face points in pixels of a square frame (pixel centres
at integer coordinates), batched and in PyTorch, so training and inference cut the same
crops. The crop is aligned with the mouth: centred on the outer lip contour, its x axis from
the right mouth corner (61) to the left (291), its side ``crop_scale`` times the corners'
distance. Points map into the crop with :func:`to_crop`, images with :func:`cut` (bilinear),
and a crop maps back into the frame with :func:`paste`.

The inner-lip contour (20 points, upper lip from corner to corner, then the lower lip back)
bounds the mouth's opening: teeth, tongue and cavity are inside it, the lips outside.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MOUTH_CORNERS = (61, 291)  # outer corners: right, left (the subject's), mediapipe indices
INNER_LIP_RING = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
OUTER_LIP_RING = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)


def mouth_affine(points: torch.Tensor, frame_size: int, crop_scale: float) -> torch.Tensor:
    """(b, 2, 3) maps from the crop's normalised coordinates to the frame's (``affine_grid``'s convention).

    Args:
        points: (b, 478, 2) face points in pixels of a (frame_size, frame_size) frame.
        frame_size: the frame's side S.
        crop_scale: the crop's side over the distance of the mouth corners.
    """
    points = points.float()
    right, left = points[:, MOUTH_CORNERS[0]], points[:, MOUTH_CORNERS[1]]
    axis = left - right
    width = axis.norm(dim=1, keepdim=True).clamp_min(1.0)  # (b, 1)
    u = axis / width  # crop x in the frame
    v = torch.stack([-u[:, 1], u[:, 0]], 1)  # crop y: x turned 90 degrees (down for an upright face)
    centre = points[:, list(OUTER_LIP_RING)].mean(dim=1)  # (b, 2) pixels
    half = crop_scale * width / 2.0  # (b, 1) pixels from the crop's centre to its edge
    to_norm = 2.0 / frame_size
    linear = torch.stack([u * half * to_norm, v * half * to_norm], 2)  # (b, 2, 2): columns are the crop's axes
    offset = (centre + 0.5) * to_norm - 1.0  # (b, 2)
    return torch.cat([linear, offset[:, :, None]], 2)


def invert_affine(theta: torch.Tensor) -> torch.Tensor:
    """(b, 2, 3) the inverse of (b, 2, 3) affine maps."""
    linear_inv = torch.linalg.inv(theta[:, :, :2])
    return torch.cat([linear_inv, -(linear_inv @ theta[:, :, 2:])], 2)


def to_crop(points: torch.Tensor, theta: torch.Tensor, frame_size: int, crop_size: int) -> torch.Tensor:
    """(b, n, 2) frame pixels -> (b, n, 2) pixels of the (crop_size, crop_size) crop ``theta`` cuts."""
    normalised = (points.float() + 0.5) * (2.0 / frame_size) - 1.0
    inverse = invert_affine(theta)
    in_crop = normalised @ inverse[:, :, :2].transpose(1, 2) + inverse[:, None, :, 2]
    return (in_crop + 1.0) * (crop_size / 2.0) - 0.5


def cut(frames: torch.Tensor, theta: torch.Tensor, crop_size: int) -> torch.Tensor:
    """(b, c, S, S) -> (b, c, crop_size, crop_size) bilinear crops (the frame's border repeats outside it)."""
    grid = F.affine_grid(theta.to(frames.dtype), [frames.shape[0], frames.shape[1], crop_size, crop_size],
                         align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def paste(frames: torch.Tensor, crops: torch.Tensor, masks: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``frames`` with ``crops`` blended in through ``masks`` where ``theta`` cut them.

    Args:
        frames: (b, c, S, S).
        crops: (b, c, m, m) content at the crop's pixels.
        masks: (b, 1, m, m) in [0, 1]; 0 keeps the frame (and outside the crop the frame is kept).

    Returns:
        (b, c, S, S); exactly ``frames`` where the mask is 0.
    """
    size = frames.shape[-1]
    grid = F.affine_grid(invert_affine(theta).to(frames.dtype), [frames.shape[0], 1, size, size], align_corners=False)
    # the content's edge repeats (not faded to zero), the mask fades to 0 outside the crop
    content = F.grid_sample(crops.to(frames.dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
    alpha = F.grid_sample(masks.to(frames.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.lerp(frames, content, alpha.clamp(0.0, 1.0))


def polygon_mask(polygon: torch.Tensor, size: int, supersample: int = 2) -> torch.Tensor:
    """(b, 1, size, size) in [0, 1]: how much of each pixel the closed polygon (b, n, 2) covers.

    The polygon is in pixels of the (size, size) image; each pixel is tested at
    ``supersample``^2 points (even-odd rule), so the edge is anti-aliased.
    """
    b = polygon.shape[0]
    fine = size * supersample
    coords = (torch.arange(fine, device=polygon.device, dtype=torch.float32) + 0.5) / supersample - 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    px, py = xs.reshape(1, -1, 1), ys.reshape(1, -1, 1)  # (1, P, 1)
    start = polygon.float()  # (b, n, 2)
    end = torch.roll(start, -1, dims=1)
    x0, y0 = start[:, None, :, 0], start[:, None, :, 1]  # (b, 1, n)
    x1, y1 = end[:, None, :, 0], end[:, None, :, 1]
    straddles = (y0 > py) != (y1 > py)  # (b, P, n) the edge crosses the pixel's row
    dy = torch.where((y1 - y0).abs() < 1e-6, torch.full_like(y0, 1e-6), y1 - y0)
    x_cross = x0 + (py - y0) * (x1 - x0) / dy
    crossings = (straddles & (px < x_cross)).sum(dim=2)  # (b, P)
    inside = (crossings % 2 == 1).float().reshape(b, 1, fine, fine)
    return F.avg_pool2d(inside, supersample) if supersample > 1 else inside


def grow(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """(b, 1, h, w) ``mask`` dilated by ``pixels`` (a max filter of side 2 * pixels + 1)."""
    if pixels <= 0:
        return mask
    return F.max_pool2d(mask, 2 * pixels + 1, stride=1, padding=pixels)


def soften(mask: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """(b, 1, h, w) ``mask`` with its edges feathered by ``passes`` 3 x 3 box filters (0 and 1 inside stay)."""
    for _ in range(passes):
        mask = F.avg_pool2d(F.pad(mask, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return mask
