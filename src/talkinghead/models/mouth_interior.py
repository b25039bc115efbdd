"""An optional capability of an inference model: paint the mouth's opening at the output size (issue 24).

:meth:`~talkinghead.models.inference_model.InferenceModel.mouth_interior` returns a
:class:`MouthInterior` when the model holds a mouth generator
(:mod:`talkinghead.models.mouth_generator`). Shared code (the animation pipeline, evaluation)
asks it for the person's reference mouth once, then paints every frame after the frame is
rendered at its output size, from the target's face points at that size.
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.config.mouth import MouthGeneratorConfig
from talkinghead.models.mouth_generator import cut_mouth, mouth_opening, render_mouth


class MouthInterior:
    """Teeth, tongue and cavity inside the target's inner lips, from the person's own mouth where a photo shows it.

    Args:
        generator: the trained :class:`~talkinghead.models.mouth_generator.MouthGenerator`.
        config: its architecture and crop.
    """

    def __init__(self, generator: nn.Module, config: MouthGeneratorConfig):
        self.generator = generator
        self.config = config

    def reference(self, frames: torch.Tensor | None, points: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The person's mouth: {"mouth_reference": (3, m, m), "mouth_reference_inner": (1, m, m)}.

        Args:
            frames: (k, 3, S, S) the source frames in [-1, 1], or None (a saved person state:
                the generator then paints from the target frame alone).
            points: (k, 478, 2) their face points in pixels of the frames.

        The frame whose mouth is most open is used: with K > 1 photos, the person's own
        teeth when one of them shows them.
        """
        m = self.config.crop_size
        device = next(self.generator.parameters()).device
        if frames is None or points is None:
            return {"mouth_reference": torch.zeros(3, m, m, device=device),
                    "mouth_reference_inner": torch.zeros(1, m, m, device=device)}
        index = int(mouth_opening(points.float()).argmax())
        crop = cut_mouth(frames[index:index + 1].float().to(device), points[index:index + 1].float().to(device),
                         self.config)
        return {"mouth_reference": crop.image[0], "mouth_reference_inner": crop.inner[0]}

    @torch.no_grad()
    def paint(self, frames: torch.Tensor, points: torch.Tensor, reference: dict[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, S, S) frames with the mouth's opening painted, for (b, 478, 2) target points in the frames' pixels."""
        b = frames.shape[0]
        device = frames.device
        ref = reference["mouth_reference"].to(device, frames.dtype)[None].expand(b, -1, -1, -1)
        ref_inner = reference["mouth_reference_inner"].to(device, frames.dtype)[None].expand(b, -1, -1, -1)
        return render_mouth(self.generator, frames, points.to(device, torch.float32), ref, ref_inner, self.config)
