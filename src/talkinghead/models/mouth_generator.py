"""The mouth-interior generator: teeth, tongue and cavity inside the target's inner lips (issue 24).

A warping model moves the photo's pixels; a photo with a closed mouth has no teeth to move,
so a driver's open mouth became a stretched, flat patch. The face networks see the mouth at
about 40 px (128 px face), too few for teeth. This block works on a square crop aligned with
the mouth (:mod:`.mouth_geometry`) at ``crop_size`` px cut from the *output-size* frame, and
paints only inside the target inner-lip contour grown by ``paint_dilation`` px, so the lips,
skin and everything else stay the face model's and the photo's:

    C      = cut(frame, mouth box of the target points)          (b, 3, m, m)
    M_in   = inner-lip polygon of the target points              (b, 1, m, m), anti-aliased
    P      = max(soften(grow(M_in)), M_in)                       where it paints
    B      = a real open mouth fitted onto the target's contour  (b, 3, m, m), :mod:`.mouth_bank`
    x      = C * (1 - grow(M_in)) ++ M_in ++ M_out ++ R ++ M_R ++ B   12 channels
    out    = paste(frame, lerp(C, B + G(x), P))

B is the retrieved interior: from the person's own photos when one shows the mouth open,
else from the bank of training people the generator carries (buffers). G starts at zero (its
last convolution is zero-initialised), so an untrained generator pastes B as it is; training
teaches it the corrections (edges, shading, colour) on real frames whose opening is blanked.
R is the person's own mouth (the source frame whose mouth is most open) and M_R its
inner-lip mask. The network is a small U-Net (stride-2 convs down, bilinear up with skip
concatenation, residual blocks at the bottom).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.mouth import MouthGeneratorConfig
from talkinghead.models.mouth_bank import LIP_BAND, fit_candidates, match_lips, nearest_candidates
from talkinghead.models.mouth_geometry import (
    INNER_LIP_RING,
    OUTER_LIP_RING,
    cut,
    grow,
    mouth_affine,
    paste,
    polygon_mask,
    soften,
    to_crop,
)
from talkinghead.models.temporal_sr import ResidualBlock

# blanked crop 3, inner mask 1, outer mask 1, reference 3, reference inner mask 1, retrieved interior 3
MOUTH_INPUT_CHANNELS = 12
RETRIEVED = slice(9, 12)  # the retrieved interior's channels of the inputs
RING_POINTS = len(INNER_LIP_RING)


class MouthGenerator(nn.Module):
    """(b, 12, m, m) inputs -> (b, 3, m, m) mouth content in [-1, 1]: the retrieved interior plus a correction.

    Buffers (saved with the weights): the bank of real open mouths, ``bank_images`` (n, 3, m, m)
    uint8 crops, ``bank_rings`` (n, 20, 2) their inner-lip contours in crop pixels and
    ``bank_identities`` (n,) the person of each (-1: an empty slot).

    Args:
        config: the architecture (:class:`MouthGeneratorConfig`).
    """

    def __init__(self, config: MouthGeneratorConfig):
        super().__init__()
        self.config = config
        m, n = config.crop_size, config.bank_size
        self.register_buffer("bank_images", torch.zeros(n, 3, m, m, dtype=torch.uint8))
        self.register_buffer("bank_rings", torch.zeros(n, RING_POINTS, 2))
        self.register_buffer("bank_identities", torch.full((n,), -1, dtype=torch.int64))
        widths = [min(config.base_channels * 2**i, config.max_channels) for i in range(config.num_down_blocks + 1)]
        self.stem = nn.Conv2d(MOUTH_INPUT_CHANNELS, widths[0], 3, padding=1)
        self.downs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1) for i in range(config.num_down_blocks)
        )
        self.bottleneck = nn.Sequential(*[ResidualBlock(widths[-1]) for _ in range(config.num_res_blocks)])
        self.ups = nn.ModuleList(
            nn.Conv2d(widths[i + 1] + widths[i], widths[i], 3, padding=1) for i in reversed(range(config.num_down_blocks))
        )
        self.to_rgb = nn.Conv2d(widths[0], 3, 3, padding=1)
        nn.init.zeros_(self.to_rgb.weight)  # an untrained generator returns the retrieved interior
        nn.init.zeros_(self.to_rgb.bias)

    @property
    def bank_entries(self) -> torch.Tensor:
        """(n,) bool: the bank's slots that hold a mouth."""
        return self.bank_identities >= 0

    def bank_crops(self) -> torch.Tensor:
        """(n, 3, m, m) the bank's crops in [-1, 1] (empty slots included)."""
        return self.bank_images.float() / 127.5 - 1.0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.shape[1] != MOUTH_INPUT_CHANNELS:
            raise ValueError(f"MouthGenerator: expected (b, {MOUTH_INPUT_CHANNELS}, m, m) inputs, got {tuple(inputs.shape)}")
        x = F.leaky_relu(self.stem(inputs), 0.2)
        skips = []
        for down in self.downs:
            skips.append(x)
            x = F.leaky_relu(down(x), 0.2)
        x = self.bottleneck(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = F.leaky_relu(up(torch.cat([x, skip], 1)), 0.2)
        return (inputs[:, RETRIEVED] + self.to_rgb(x)).clamp(-1.0, 1.0)


@dataclass
class MouthCrop:
    """A frame's mouth, cut for the generator.

    Attributes:
        theta: (b, 2, 3) the crop's map into the frame (:func:`~.mouth_geometry.mouth_affine`).
        image: (b, 3, m, m) the frame's pixels at the crop.
        inner: (b, 1, m, m) the inner-lip region (the mouth's opening), anti-aliased.
        outer: (b, 1, m, m) the outer-lip region (lips and opening).
        ring: (b, 20, 2) the inner-lip contour in crop pixels.
    """

    theta: torch.Tensor
    image: torch.Tensor
    inner: torch.Tensor
    outer: torch.Tensor
    ring: torch.Tensor

    def select(self, index: torch.Tensor) -> "MouthCrop":
        """The crops of the frames ``index`` (a (k,) index tensor) picks."""
        return MouthCrop(theta=self.theta[index], image=self.image[index], inner=self.inner[index],
                         outer=self.outer[index], ring=self.ring[index])


def cut_mouth(frames: torch.Tensor, points: torch.Tensor, config: MouthGeneratorConfig) -> MouthCrop:
    """The mouth crop of (b, 3, S, S) frames whose (b, 478, 2) face points are in the frames' pixels."""
    size, m = frames.shape[-1], config.crop_size
    theta = mouth_affine(points, size, config.crop_scale)
    in_crop = to_crop(points, theta, size, m)
    ring = in_crop[:, list(INNER_LIP_RING)]
    inner = polygon_mask(ring, m)
    outer = polygon_mask(in_crop[:, list(OUTER_LIP_RING)], m)
    return MouthCrop(theta=theta, image=cut(frames, theta, m), inner=inner.to(frames.dtype), outer=outer.to(frames.dtype),
                     ring=ring)


def lip_band(crop: MouthCrop) -> torch.Tensor:
    """(b, 1, m, m) the lips just around the opening (grown by ``LIP_BAND`` px, the opening left out)."""
    return (grow(crop.inner, LIP_BAND) - crop.inner).clamp(0.0, 1.0)


def retrieve(crop: MouthCrop, candidates: torch.Tensor, candidate_rings: torch.Tensor,
             allowed: torch.Tensor | None = None) -> torch.Tensor:
    """(b, 3, m, m) the candidate nearest each target's opening, fitted onto it and matched to its lips.

    Args:
        crop: the target mouths (their ``image`` gives the lips' colour: the face model's frame).
        candidates: (n, 3, m, m) real mouth crops in [-1, 1]; none (n = 0): zeros.
        candidate_rings: (n, 20, 2) their inner-lip contours.
        allowed: (b, n) bool, the candidates each target may take (None: all).
    """
    if candidates.shape[0] == 0:
        return torch.zeros_like(crop.image)
    index = nearest_candidates(crop.ring, candidate_rings.to(crop.ring.dtype), allowed)
    fitted = fit_candidates(candidates[index].to(crop.image.dtype), candidate_rings[index].to(crop.ring.dtype), crop.ring)
    fitted = match_lips(fitted, crop.image, lip_band(crop))
    if allowed is not None:  # a target with no candidate to take gets none
        fitted = fitted * allowed.any(dim=1).to(fitted.dtype)[:, None, None, None]
    return fitted


def paint_mask(crop: MouthCrop, config: MouthGeneratorConfig) -> torch.Tensor:
    """(b, 1, m, m) where the generator's content replaces the frame's: the opening, grown and feathered.

    At least the opening's own coverage, so a thin opening is painted whole, not blurred into the frame.
    """
    return torch.maximum(soften(grow(crop.inner, config.paint_dilation)), crop.inner).clamp(0.0, 1.0)


def generator_inputs(crop: MouthCrop, reference: torch.Tensor, reference_inner: torch.Tensor, retrieved: torch.Tensor,
                     config: MouthGeneratorConfig) -> torch.Tensor:
    """(b, 12, m, m): the crop blanked where it is painted, both masks, the reference mouth and its mask, the retrieved interior."""
    blank = grow((crop.inner > 0).to(crop.image.dtype), config.paint_dilation)
    dtype = crop.image.dtype
    return torch.cat([crop.image * (1.0 - blank), crop.inner, crop.outer, reference.to(dtype),
                      reference_inner.to(dtype), retrieved.to(dtype)], 1)


def paint_crop(generator: nn.Module, crop: MouthCrop, reference: torch.Tensor, reference_inner: torch.Tensor,
               retrieved: torch.Tensor, config: MouthGeneratorConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(the crop with its opening painted (b, 3, m, m), the paint mask (b, 1, m, m))."""
    mask = paint_mask(crop, config)
    content = generator(generator_inputs(crop, reference, reference_inner, retrieved, config))
    return torch.lerp(crop.image, content, mask), mask


def render_mouth(generator: nn.Module, frames: torch.Tensor, points: torch.Tensor, reference: torch.Tensor,
                 reference_inner: torch.Tensor, candidates: torch.Tensor, candidate_rings: torch.Tensor,
                 config: MouthGeneratorConfig) -> torch.Tensor:
    """(b, 3, S, S) frames with the mouth's opening painted; unchanged where the target mouth is closed.

    Args:
        generator: a :class:`MouthGenerator`.
        frames: (b, 3, S, S) in [-1, 1].
        points: (b, 478, 2) the target face points in the frames' pixels.
        reference: (b, 3, m, m) the person's mouth crop (:func:`cut_mouth` of a source frame;
            zeros when there is none).
        reference_inner: (b, 1, m, m) its inner-lip mask.
        candidates: (n, 3, m, m) real open mouths to retrieve from (n may be 0).
        candidate_rings: (n, 20, 2) their inner-lip contours in crop pixels.
    """
    crop = cut_mouth(frames, points, config)
    open_ = crop.inner.flatten(1).amax(dim=1) > 0  # (b,) frames whose mouth shows an opening
    if not open_.any():
        return frames  # nothing to paint: the networks are not run
    index = torch.nonzero(open_).flatten()
    crop = crop.select(index)
    retrieved = retrieve(crop, candidates, candidate_rings)
    painted, mask = paint_crop(generator, crop, reference[index], reference_inner[index], retrieved, config)
    out = frames.clone()
    out[index] = paste(frames[index], painted, mask, crop.theta).clamp(-1.0, 1.0)
    return out


def mouth_opening(points: torch.Tensor) -> torch.Tensor:
    """(b,) inner-lip gap (points 13, 14) over the outer-eye-corner distance (33, 263) of (b, 478, 2) points."""
    gap = (points[:, 13] - points[:, 14]).norm(dim=-1)
    eyes = (points[:, 33] - points[:, 263]).norm(dim=-1).clamp_min(1e-6)
    return gap / eyes
