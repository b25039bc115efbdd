"""dlib's aligned face chip (``get_face_chip``) in torch: batched, differentiable, on any device.

dlib's face descriptor looks at a 150 x 150 chip whose five landmarks (eye corners and nose
base, dlib's five-point predictor) are moved by a similarity transform onto a fixed template,
with a margin of ``padding`` (0.25) of the face size on every side. ``get_face_chip_details``
(``dlib/image_transforms/interpolation.h``) fits that similarity (least squares) from the
template to the image points and turns it into a rotated rectangle; ``extract_image_chips``
maps the chip's corner pixels onto the rectangle's corners and samples bilinearly, from an
image pyramid level when the face is more than twice the chip's size (so a big face is
low-pass filtered before it is sampled).

:func:`extract_face_chips` does the same with ``affine_grid``-style coordinates and
``grid_sample``, and for big faces builds dlib's pyramid (``pyramid_down<2>``: a 5-tap binomial
filter, stride 2, over the chip's grown bounding box) with dlib's point mapping. Gradients
flow to the image pixels (and to the landmarks). 68-point iBUG landmarks (or the 68 points the
project maps from mediapipe's mesh) are first reduced to dlib's five points.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25
# dlib's five-point template in a unit chip without padding (get_face_chip_details): the
# subject's left eye outer and inner corners, right eye outer and inner corners, nose base.
DLIB_FIVE_POINT_TEMPLATE = torch.tensor(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=torch.float64,
)
# The iBUG-68 points that are dlib's five points, in the five-point predictor's order.
IBUG68_FIVE_POINTS = (45, 42, 36, 39, 33)


def dlib_five_points(points: torch.Tensor) -> torch.Tensor:
    """dlib's five points from (..., 5, 2) or (..., 68, 2) iBUG landmarks (x, y) -> (..., 5, 2)."""
    if points.shape[-2] == 5:
        return points
    if points.shape[-2] == 68:
        return points[..., list(IBUG68_FIVE_POINTS), :]
    raise ValueError(f"landmarks {tuple(points.shape)}: expected (..., 5, 2) dlib points or (..., 68, 2) iBUG points")


def fit_similarity(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares similarity ``target ~ M @ source + t`` (Umeyama, no reflection), batched.

    Args:
        source: (b, p, 2).
        target: (b, p, 2).

    Returns:
        ``M`` (b, 2, 2) = scale * rotation and ``t`` (b, 2).
    """
    source_mean, target_mean = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    sc, tc = source - source_mean, target - target_mean  # (b, p, 2)
    # A similarity without reflection has M = [[a, -c], [c, a]]; least squares gives a and c
    # in closed form (the 2-D case of Umeyama's solution).
    norm = (sc**2).sum(dim=(1, 2))  # (b,)
    a = (sc * tc).sum(dim=(1, 2)) / norm
    c = (sc[..., 0] * tc[..., 1] - sc[..., 1] * tc[..., 0]).sum(1) / norm
    m = torch.stack([torch.stack([a, -c], -1), torch.stack([c, a], -1)], -2)  # (b, 2, 2)
    t = target_mean[:, 0] - (m @ source_mean[:, 0, :, None])[..., 0]
    return m, t


def _pyramid_down(images: torch.Tensor, uint8_levels: bool) -> torch.Tensor:
    """dlib's ``pyramid_down<2>``: (b, c, h, w) -> (b, c, (h - 3) // 2, (w - 3) // 2).

    A separable [1, 4, 6, 4, 1] filter; output pixel j takes input pixels 2j .. 2j + 4 in both
    directions. dlib sums in integers and divides by 256 rounding down; with ``uint8_levels``
    that rounding is applied too (its gradient passes straight through), for 0..255 inputs.
    """
    c = images.shape[1]
    taps = images.new_tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (taps[:, None] * taps[None, :]).expand(c, 1, 5, 5)
    out = F.conv2d(images, kernel, stride=2, groups=c)[..., : (images.shape[-2] - 3) // 2, : (images.shape[-1] - 3) // 2]
    out = out / 256.0
    if uint8_levels:
        out = out - (out - torch.floor(out)).detach()
    return out


def _level_point(point: torch.Tensor) -> torch.Tensor:
    """dlib's ``pyramid_down<2>::point_down`` of (..., 2) points: ``p / 2 - (1.25, 0.75)``."""
    return point / 2.0 - point.new_tensor([1.25, 0.75])


def _sample(image: torch.Tensor, center: torch.Tensor, angle: torch.Tensor, span: torch.Tensor,
            size: int) -> torch.Tensor:
    """Bilinear chips of (k, c, h, w) images: chip pixel (i, j) at ``center + R(angle) (j, i) * span / (size - 1)``.

    dlib maps the chip's corner pixels onto the rotated rectangle's corners (find_affine_transform
    from three corners), i.e. pixel centres 0 .. size - 1 spread over ``span`` image pixels.
    """
    steps = torch.linspace(-0.5, 0.5, size, dtype=torch.float64, device=image.device)  # (size,)
    u = steps[None, None, :] * span[:, None, None]  # (k, 1, size): offsets along the chip's x before rotation
    v = steps[None, :, None] * span[:, None, None]  # (k, size, 1)
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    x = center[:, 0, None, None] + cos * u - sin * v  # (k, size, size)
    y = center[:, 1, None, None] + sin * u + cos * v
    h, w = image.shape[-2:]
    grid = torch.stack([2.0 * x / (w - 1) - 1.0, 2.0 * y / (h - 1) - 1.0], dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def face_chip_geometry(points: torch.Tensor, size: int = DLIB_CHIP_SIZE,
                       padding: float = DLIB_CHIP_PADDING) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dlib's ``chip_details`` of each face: the rotated rectangle the chip is cut from.

    Args:
        points: (b, 5, 2) dlib points or (b, 68, 2) iBUG points, (x, y) in image pixels.
        size: chip side in pixels.
        padding: margin around the template, as a fraction of the face size.

    Returns:
        ``center`` (b, 2) in pixels, ``angle`` (b,) in radians, ``side`` (b,): the rectangle's
        side in pixels (``size * scale``), all differentiable in ``points``.
    """
    five = dlib_five_points(points).to(torch.float64)
    template = (padding + DLIB_FIVE_POINT_TEMPLATE.to(five.device)) / (2 * padding + 1) * size
    m, t = fit_similarity(template.expand_as(five), five)
    angle = torch.atan2(m[:, 1, 0], m[:, 0, 0])
    scale = torch.sqrt(m[:, 0, 0] ** 2 + m[:, 1, 0] ** 2)
    center = (m @ five.new_tensor([size / 2.0, size / 2.0])) + t
    return center, angle, size * scale


def extract_face_chips(images: torch.Tensor, points: torch.Tensor, size: int = DLIB_CHIP_SIZE,
                       padding: float = DLIB_CHIP_PADDING, antialias: bool = True,
                       uint8_levels: bool = False) -> torch.Tensor:
    """Aligned face chips as dlib's ``get_face_chip(image, shape, size, padding)`` cuts them.

    Args:
        images: (b, c, h, w) float images (any value range; the chip keeps it).
        points: (b, 5, 2) dlib five-point landmarks or (b, 68, 2) iBUG landmarks, (x, y) pixels.
        size: chip side (dlib's descriptor: 150).
        padding: margin of the template (dlib's descriptor: 0.25).
        antialias: sample faces larger than twice the chip from a pyramid level, as dlib does
            (turn off only to study the difference).
        uint8_levels: round pyramid levels down to integers as dlib does (for 0..255 images).

    Returns:
        (b, c, size, size) chips, differentiable w.r.t. ``images`` and ``points``; pixels
        outside the image are 0, as in dlib.
    """
    if images.ndim != 4 or points.ndim != 3 or points.shape[0] != images.shape[0] or points.shape[-1] != 2:
        raise ValueError(f"images {tuple(images.shape)} and points {tuple(points.shape)}: expected (b, c, h, w) and (b, p, 2)")
    center, angle, side = face_chip_geometry(points, size, padding)
    # dlib's chip rectangle spans side - 1 pixels between its corner pixel centres (centered_drect).
    span = side - 1.0
    depths = torch.zeros(len(images), dtype=torch.long)
    if antialias:
        # Go down a pyramid level while the level below still holds more pixels than the chip
        # (extract_image_chips): each level halves the span.
        spans = span.detach().cpu().clone()
        while True:
            down = (spans / 2.0 + 1.0) ** 2 > size * size
            if not down.any():
                break
            depths += down.long()
            spans = torch.where(down, spans / 2.0, spans)
    chips = images.new_zeros(images.shape[0], images.shape[1], size, size)
    direct = (depths == 0).nonzero()[:, 0].to(images.device)
    if len(direct):
        chips[direct] = _sample(images[direct], center[direct], angle[direct], span[direct], size)
    h, w = images.shape[-2:]
    for i in (depths > 0).nonzero()[:, 0].tolist():
        depth = int(depths[i])
        # dlib builds the pyramid of the chip's rotated rectangle grown by a border
        # (2 pixels, doubled plus 2 per level), rounded to whole pixels and cut to the image.
        grow = 2.0
        for _ in range(depth):
            grow = grow * 2.0 + 2.0
        half = span[i].detach() / 2.0
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=torch.float64) * half.cpu()
        cos, sin = math.cos(float(angle[i])), math.sin(float(angle[i]))
        rotated = corners @ torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64) + center[i].detach().cpu()
        low = (rotated.min(0).values - grow).clamp(min=0.0)
        high = torch.minimum(rotated.max(0).values + grow, torch.tensor([w - 1.0, h - 1.0], dtype=torch.float64))
        left, top = (int(math.floor(float(v) + 0.5)) for v in low)
        right, bottom = (int(math.floor(float(v) + 0.5)) for v in high)
        level = images[i:i + 1, :, top:bottom + 1, left:right + 1]
        c = center[i:i + 1] - center.new_tensor([left, top])
        for _ in range(depth):
            level = _pyramid_down(level, uint8_levels)
            c = _level_point(c)
        chips[i:i + 1] = _sample(level, c, angle[i:i + 1], span[i:i + 1] / 2.0**depth, size)
    return chips
