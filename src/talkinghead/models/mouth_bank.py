"""Real mouth interiors to paint from: retrieve a mouth whose opening has the target's shape, and fit it in.

A photo with a closed mouth has no teeth to warp, and a small network trained on a CPU paints
an opening as a blurred average of teeth and tongue. Real open mouths, in crops aligned with
the mouth (:mod:`.mouth_geometry`), are kept with their inner-lip contour; for each frame the
candidate whose contour is nearest the target's (in crop pixels) is mapped onto the target's
contour by a least-squares affine map and brightened or darkened to the target's lips. The
mouth generator then only corrects that (:mod:`.mouth_generator`): every pixel of teeth and
cavity is a real photograph's.

Candidates come from the person's own photos when one shows the mouth open (K > 1 sources),
else from the model's bank of training people (:class:`MouthBankConfig` sized buffers of the
generator), from one person of the bank for a whole video (the one whose lips are nearest in
colour) so that the teeth do not change between frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAIN_RANGE = (0.75, 1.33)  # how far a candidate's brightness is scaled towards the target's lips
LIP_BAND = 3  # crop pixels around the opening where lips are compared


def nearest_candidates(rings: torch.Tensor, candidate_rings: torch.Tensor, allowed: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """(b,) index of the candidate whose inner-lip contour is nearest each target's.

    Args:
        rings: (b, r, 2) the targets' inner-lip contours in crop pixels.
        candidate_rings: (n, r, 2) the candidates' contours in crop pixels.
        allowed: (b, n) bool, candidates each target may take (None: all).
    """
    distances = (rings[:, None] - candidate_rings[None]).square().sum(-1).mean(-1)  # (b, n)
    if allowed is not None:
        distances = distances.masked_fill(~allowed, float("inf"))
    return distances.argmin(dim=1)


def fit_affine(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(b, 2, 3) least-squares affine maps taking (b, r, 2) ``target`` points onto ``source`` points.

    The map samples: for a pixel at a target position it gives where to read the source.
    """
    ones = torch.ones_like(target[..., :1])
    design = torch.cat([target, ones], -1)  # (b, r, 3)
    solution = torch.linalg.lstsq(design.double(), source.double()).solution  # (b, 3, 2)
    return solution.transpose(1, 2).to(target.dtype)


def fit_candidates(images: torch.Tensor, rings: torch.Tensor, target_rings: torch.Tensor) -> torch.Tensor:
    """(b, 3, m, m) candidate crops (b, 3, m, m) resampled so their contours (b, r, 2) fall on ``target_rings``.

    All in crop pixels of the same crop size; the map is fitted in normalised coordinates.
    """
    m = images.shape[-1]

    def normalised(p):
        return (p + 0.5) * (2.0 / m) - 1.0

    theta = fit_affine(normalised(rings.float()), normalised(target_rings.float()))
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def match_lips(fitted: torch.Tensor, frame: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """``fitted`` (b, 3, m, m) in [-1, 1] brightened or darkened so its mean brightness in ``band`` is the frame's.

    ``band``: (b, 1, m, m) the lips around the target's opening (where both show lips once the
    candidate is fitted onto the target's contour). One gain for the three channels, so white
    teeth stay white under lips of another colour; held in :data:`GAIN_RANGE`.
    """
    def brightness(image):
        grey = ((image + 1.0) / 2.0).mean(dim=1, keepdim=True)
        return (grey * band).flatten(1).sum(1) / band.flatten(1).sum(1).clamp_min(1e-6)  # (b,)

    gain = (brightness(frame) / brightness(fitted).clamp_min(1e-3)).clamp(*GAIN_RANGE)
    return (((fitted + 1.0) / 2.0) * gain[:, None, None, None] * 2.0 - 1.0).clamp(-1.0, 1.0)


def lip_colour(images: torch.Tensor, rings: torch.Tensor) -> torch.Tensor:
    """(b, 3) mean colour in [0, 1] of (b, 3, m, m) crops just outside their (b, r, 2) inner-lip contours.

    Read at each contour point moved ``LIP_BAND`` crop pixels away from the contour's centre:
    on the lips, whatever the mouth's shape.
    """
    m = images.shape[-1]
    centre = rings.mean(dim=1, keepdim=True)
    outward = F.normalize(rings - centre, dim=-1)
    on_lips = rings + LIP_BAND * outward  # (b, r, 2) crop pixels
    grid = ((on_lips + 0.5) * (2.0 / m) - 1.0)[:, None]  # (b, 1, r, 2)
    values = F.grid_sample(images.float(), grid.float(), mode="bilinear", padding_mode="border", align_corners=False)
    return ((values[:, :, 0] + 1.0) / 2.0).mean(dim=2)  # (b, 3)


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """(n,) mean absolute Laplacian of the brightness of (n, 3, m, m) crops in [-1, 1] (blurred crops score low)."""
    grey = images.float().mean(dim=1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=images.device)[None, None]
    return F.conv2d(grey, kernel).abs().flatten(1).mean(1)
