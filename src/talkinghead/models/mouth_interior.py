"""An optional capability of an inference model: paint the mouth's opening at the output size (issue 24).

:meth:`~talkinghead.models.inference_model.InferenceModel.mouth_interior` returns a
:class:`MouthInterior` when the model holds a mouth generator
(:mod:`talkinghead.models.mouth_generator`). Shared code (the animation pipeline, evaluation)
asks it for the person's mouth once (:meth:`MouthInterior.reference`), then paints every
frame after the frame is rendered at its output size, from the target's face points at that size.
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.config.mouth import MouthGeneratorConfig
from talkinghead.models.mouth_bank import lip_colour, sharpness
from talkinghead.models.mouth_generator import cut_mouth, mouth_opening, render_mouth
from talkinghead.models.mouth_geometry import INNER_LIP_RING

WIDEST_QUANTILE = 0.75  # bank people considered: those whose widest mouth is in the top quarter
# where the inner-lip contour's middle points (13 upper, 14 lower) sit in it
RING_UPPER_MIDDLE = INNER_LIP_RING.index(13)
RING_LOWER_MIDDLE = INNER_LIP_RING.index(14)

# A source photo whose inner-lip gap is this fraction of its eye-corner distance shows its
# own teeth and cavity; its own mouth is then what every frame paints from.
OWN_MOUTH_OPEN = 0.08


class MouthInterior:
    """Teeth, tongue and cavity inside the target's inner lips, from real open mouths.

    Args:
        generator: the trained :class:`~talkinghead.models.mouth_generator.MouthGenerator`.
        config: its architecture and crop.
    """

    def __init__(self, generator: nn.Module, config: MouthGeneratorConfig):
        self.generator = generator
        self.config = config

    @torch.no_grad()
    def reference(self, frames: torch.Tensor | None, points: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The person's mouth and the open mouths every frame of this person paints from.

        Args:
            frames: (k, 3, S, S) the source frames in [-1, 1], or None (a saved person state).
            points: (k, 478, 2) their face points in pixels of the frames.

        Returns:
            ``mouth_reference`` (3, m, m) and ``mouth_reference_inner`` (1, m, m): the source
            frame whose mouth is most open (zeros without photos); ``mouth_candidates``
            (c, 3, m, m) and ``mouth_candidate_rings`` (c, 20, 2): the source frames that show
            the mouth open (K > 1 photos of the person, or one open-mouthed photo), else the
            bank's mouths of the one training person whose lips are nearest the source's in
            colour (so a video keeps one set of teeth).
        """
        m = self.config.crop_size
        device = next(self.generator.parameters()).device
        bank = self.generator.bank_entries
        if frames is None or points is None:
            reference = torch.zeros(3, m, m, device=device)
            reference_inner = torch.zeros(1, m, m, device=device)
            colour = None
        else:
            frames, points = frames.float().to(device), points.float().to(device)
            crops = cut_mouth(frames, points, self.config)
            openings = mouth_opening(points)
            best = int(openings.argmax())
            reference, reference_inner = crops.image[best], crops.inner[best]
            own = openings >= OWN_MOUTH_OPEN
            if own.any():
                return {"mouth_reference": reference, "mouth_reference_inner": reference_inner,
                        "mouth_candidates": crops.image[own], "mouth_candidate_rings": crops.ring[own]}
            colour = lip_colour(crops.image[best:best + 1], crops.ring[best:best + 1])[0]
        candidates = self.generator.bank_crops()[bank]
        rings = self.generator.bank_rings[bank]
        identities = self.generator.bank_identities[bank]
        if len(identities):
            chosen = self._nearest_person(candidates, rings, identities, colour)
            keep = identities == chosen
            candidates, rings = candidates[keep], rings[keep]
        return {"mouth_reference": reference, "mouth_reference_inner": reference_inner,
                "mouth_candidates": candidates, "mouth_candidate_rings": rings}

    def _nearest_person(self, candidates: torch.Tensor, rings: torch.Tensor, identities: torch.Tensor,
                        colour: torch.Tensor | None) -> int:
        """The bank's person to paint from: among those whose mouths open widest and show sharpest, the nearest in lip colour.

        A person whose widest bank mouth is narrower than the target's opening would be
        stretched to fit (soft, smeared teeth), and a blurred clip gives blurred teeth; so
        only people whose widest mouth (height over width of the opening) is in the top
        quarter of the bank and whose crops are at least of median sharpness are considered,
        and of those the one whose mean lip colour is nearest ``colour`` (the first of them
        without a colour).
        """
        people = torch.unique(identities)
        height = (rings[:, RING_UPPER_MIDDLE] - rings[:, RING_LOWER_MIDDLE]).norm(dim=-1)  # (n,) crop pixels
        width = (rings[:, 0] - rings[:, len(INNER_LIP_RING) // 2]).norm(dim=-1).clamp_min(1e-3)  # inner corners
        sharp = sharpness(candidates)  # (n,)
        widest = torch.stack([(height / width)[identities == person].max() for person in people])
        crisp = torch.stack([sharp[identities == person].mean() for person in people])
        eligible = (widest >= torch.quantile(widest, WIDEST_QUANTILE)) & (crisp >= crisp.median())
        if not eligible.any():
            eligible = torch.ones_like(eligible)
        if colour is None:
            return int(people[eligible][0])
        colours = lip_colour(candidates, rings)  # (n, 3)
        means = torch.stack([colours[identities == person].mean(0) for person in people])
        distance = (means - colour).abs().sum(1).masked_fill(~eligible, float("inf"))
        return int(people[distance.argmin()])

    @torch.no_grad()
    def paint(self, frames: torch.Tensor, points: torch.Tensor, reference: dict[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, S, S) frames with the mouth's opening painted, for (b, 478, 2) target points in the frames' pixels."""
        b = frames.shape[0]
        device = frames.device
        ref = reference["mouth_reference"].to(device, frames.dtype)[None].expand(b, -1, -1, -1)
        ref_inner = reference["mouth_reference_inner"].to(device, frames.dtype)[None].expand(b, -1, -1, -1)
        return render_mouth(self.generator, frames, points.to(device, torch.float32), ref, ref_inner,
                            reference["mouth_candidates"].to(device, frames.dtype),
                            reference["mouth_candidate_rings"].to(device), self.config)
