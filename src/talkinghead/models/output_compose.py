"""Frames at the output resolution from a warp predicted at the network's resolution (issue 24).

A warping model's networks run at their own small size s (MetaPortrait's demo: 128 px, the
flow at 64): they predict a flow, an occlusion map and a refined frame. At an output size
S > s the frame is rendered from the photo's own pixels instead of upsampling the refined
frame:

    W_S = w_S(I_s^S)                            the source kept at S, warped by the upsampled flow
    C_S = up(I~_y - I~_s)                       the refinement's correction, upsampled
    D_S = W_S + C_S                             photo detail, with the network's correction
    out = M_S * D_S + (1 - M_S) * up(I~_y)      blended through the mask M (MetaPortrait Eq. 2's form)

M = O x T: the upsampled occlusion map O (where F_w says the source is visible) times the
warp's trust T, which falls from 1 to 0 where the flow magnifies the source by 1.5x to 3x in
area (:func:`stretch_trust`). Where the photo is visible and not stretched, skin, hair and
eye detail come from the photo at S; where a mouth opens or a cheek turns into view, the
photo has no detail to give (a stretched lip turns into streaks at S), and the refined frame,
which had to invent that content, is used as it is. Only resampling runs at S, so the
networks' cost per frame does not grow with S.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from talkinghead.models.warping import resize_flow, warp


def upsample(image: torch.Tensor, size: int) -> torch.Tensor:
    """(b, c, h, w) -> (b, c, size, size), bilinear (the identity when already that size)."""
    if image.shape[-1] == size and image.shape[-2] == size:
        return image
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)


def blend_through_mask(warped: torch.Tensor, refined: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask * warped + (1 - mask) * refined``: (b, 3, S, S), (b, 3, S, S), (b, 1, S, S) -> (b, 3, S, S).

    Mask 1 returns ``warped`` exactly, mask 0 ``refined`` exactly.
    """
    return torch.lerp(refined, warped, mask.to(warped.dtype))


# Area magnification of the source where the warp stops / has stopped being trusted for detail.
STRETCH_TRUSTED = 1.5
STRETCH_UNTRUSTED = 3.0


def stretch_trust(flow: torch.Tensor, trusted: float = STRETCH_TRUSTED,
                  untrusted: float = STRETCH_UNTRUSTED) -> torch.Tensor:
    """(b, 1, h, w) in [0, 1]: 1 where the flow (b, 2, h, w) magnifies the source by at most ``trusted`` in area.

    The magnification is 1 / det of the sampling map's Jacobian (forward differences, in
    pixels of the flow's grid; 1 for the identity), and T falls linearly to 0 at ``untrusted``.
    """
    h, w = flow.shape[-2:]
    # the sampling position in pixels of this grid: identity + flow * (size / 2)
    px = flow[:, 0] * (w / 2.0)
    py = flow[:, 1] * (h / 2.0)
    position = torch.stack([px, py], 1)  # (b, 2, h, w) displacement in pixels
    # forward differences, the last column / row repeating its neighbour's
    dx = F.pad(position[..., 1:] - position[..., :-1], (0, 1, 0, 0), mode="replicate")  # d/dx
    dy = F.pad(position[..., 1:, :] - position[..., :-1, :], (0, 0, 0, 1), mode="replicate")  # d/dy
    det = (1.0 + dx[:, 0]) * (1.0 + dy[:, 1]) - dx[:, 1] * dy[:, 0]  # (b, h, w)
    magnification = 1.0 / det.clamp_min(1e-3)  # a fold (det <= 0) is never trusted
    trust = (untrusted - magnification) / (untrusted - trusted)
    return trust.clamp(0.0, 1.0)[:, None]


def compose_at_output(source: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor, warped: torch.Tensor,
                      refined: torch.Tensor) -> torch.Tensor:
    """The frame at the source's size S (module docstring).

    Args:
        source: (b, 3, S, S) the source frame at the output size, in [-1, 1].
        flow: (b, 2, s, s) the flow (normalised units, so it needs no rescaling at S).
        occlusion: (b, 1, s, s) in [0, 1]; 1 where the source is visible.
        warped: (b, 3, s, s) the source warped at s (I~_s), what the correction was made against.
        refined: (b, 3, s, s) the refined frame I~_y.

    Returns:
        (b, 3, S, S) in [-1, 1].
    """
    size = source.shape[-1]
    if source.shape[-2] != size:
        raise ValueError(f"compose_at_output: expected a square source, got {tuple(source.shape)}")
    warped_full = warp(source, resize_flow(flow, (size, size)))
    detail = warped_full + upsample(refined - warped, size)
    mask = upsample(occlusion.clamp(0.0, 1.0) * stretch_trust(flow), size)
    return blend_through_mask(detail, upsample(refined, size), mask).clamp(-1.0, 1.0)
