"""Schema of the mouth-interior generator: teeth, tongue and the dark cavity of an opening mouth (issue 24).

A warping model can only move the photo's pixels. When the driver opens the mouth wider than
the photo does, there are no teeth or cavity to move, and the warp stretches the lips into a
flat patch. The mouth generator paints the inside of the target's inner-lip contour in a
square crop around the mouth, at a higher resolution than the face networks see it. It is a
shared block (:mod:`talkinghead.models.mouth_generator`); a method that has one lists it in
its model config as ``mouth``.
"""

from __future__ import annotations

from dataclasses import dataclass

from talkinghead.config.base import ConfigError


@dataclass
class MouthGeneratorConfig:
    """Architecture and crop of the mouth generator (``enabled: false``: the model has none).

    Args:
        enabled: the model holds a mouth generator and applies it to every frame.
        frame_size: side of the training frames the crops are cut from (the output size the
            generator is made for; other output sizes cut the same crop, resized).
        crop_size: side of the mouth crop the generator works at, in pixels.
        crop_scale: side of the crop in the frame over the mouth's width (corner to corner);
            2.0 keeps the chin of a wide-open mouth inside.
        base_channels: feature channels at the crop's resolution.
        max_channels: cap of the channels as the U-Net halves the resolution.
        num_down_blocks: resolution halvings of the U-Net.
        num_res_blocks: residual blocks at the lowest resolution.
        paint_dilation: pixels (at ``crop_size``) the painted region reaches beyond the inner-lip
            contour, so the inner lip edge is redrawn cleanly.
        bank_size: real open mouths the generator carries (uint8 crops: ``bank_size`` x 3 x
            ``crop_size``^2 bytes), filled from the training people by the mouth stage.
        bank_per_identity: open mouths kept per training person (spread over how wide they open).
    """

    enabled: bool = False
    frame_size: int = 256
    crop_size: int = 64
    crop_scale: float = 2.0
    base_channels: int = 32
    max_channels: int = 128
    num_down_blocks: int = 3
    num_res_blocks: int = 2
    paint_dilation: int = 1
    bank_size: int = 400
    bank_per_identity: int = 6

    def __post_init__(self):
        if self.crop_size < 16 or self.crop_size % (2**self.num_down_blocks):
            raise ConfigError(
                f"model.mouth.crop_size={self.crop_size} must be at least 16 and divisible by "
                f"2**{self.num_down_blocks} (model.mouth.num_down_blocks)"
            )
        if self.frame_size < self.crop_size:
            raise ConfigError(f"model.mouth.frame_size={self.frame_size} is smaller than crop_size={self.crop_size}")
        if self.crop_scale <= 1.0:
            raise ConfigError(f"model.mouth.crop_scale must be > 1 (the crop holds the mouth), got {self.crop_scale}")
        if self.base_channels < 1 or self.max_channels < self.base_channels:
            raise ConfigError("model.mouth: base_channels must be >= 1 and max_channels >= base_channels")
        if self.bank_size < 0 or self.bank_per_identity < 1:
            raise ConfigError("model.mouth: bank_size must be >= 0 and bank_per_identity >= 1")
        if self.num_down_blocks < 1 or self.num_res_blocks < 0 or self.paint_dilation < 0:
            raise ConfigError("model.mouth: num_down_blocks >= 1, num_res_blocks >= 0 and paint_dilation >= 0")
