"""G_s, the SPADE image generator of LSR (§3.3, appendix A.1).

``I_hat = G_s(y^l, z^s)`` (LSR Eq. 3): SPADE's generator (Park et al. 2019) with instance norm,
starting from a small map computed from the style latent z^s and denormalised everywhere by
the layout concatenated with the landmark image (A.1). LSR narrows SPADE to 32 feature maps
at the last layer and 64 inside every SPADE.
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.config.lsr import ImageGeneratorConfig
from talkinghead.layers import (
    EqualConv2d,
    EqualLinear,
    ScaledLeakyReLU,
    SPADEResBlock,
    resize_condition,
    upsample2x,
)
from talkinghead.models.widths import level_channels


class SPADEImageGenerator(nn.Module):
    """G_s: spatial condition and z^s -> image in [-1, 1].

    z^s -> equalised linear -> (max_channels, s, s), s = image_size / 2**num_up_blocks; a
    head :class:`SPADEResBlock`, ``num_middle_blocks`` more at that size, then
    ``num_up_blocks`` times (bilinear x2, SPADEResBlock) with feature maps halving from
    ``max_channels`` to ``base_channels`` at the last block; LReLU, 3x3 conv to RGB, tanh.

    Args:
        config: widths and depth (:class:`ImageGeneratorConfig`).
        image_size: side of the square output.
        cond_channels: channels of the condition (layout channels + landmark channels).
        latent_dim: size of z^s.
    """

    def __init__(self, config: ImageGeneratorConfig, image_size: int, cond_channels: int, latent_dim: int) -> None:
        super().__init__()
        num_up = config.num_up_blocks
        start_size = image_size // 2**num_up
        if image_size % 2**num_up or start_size < 2:
            raise ValueError(
                f"image_generator: image_size={image_size} must be divisible by 2**num_up_blocks={2**num_up} "
                f"and leave at least a 2x2 start map (instance norm); use fewer blocks or a larger size"
            )
        self.config = config
        self.image_size = image_size
        self.cond_channels = cond_channels
        self.start_size = start_size
        top = config.max_channels
        spade = {"cond_channels": cond_channels, "hidden_channels": config.spade_hidden_channels}
        self.fc = EqualLinear(latent_dim, top * start_size * start_size)
        self.head = SPADEResBlock(top, top, **spade)
        self.middle_blocks = nn.ModuleList(SPADEResBlock(top, top, **spade) for _ in range(config.num_middle_blocks))
        # Output feature maps of up block j: min(max, base * 2**(num_up - 1 - j)).
        outs = level_channels(config.base_channels, config.max_channels, num_up)[::-1]
        ins = [top, *outs[:-1]]
        self.up_blocks = nn.ModuleList(SPADEResBlock(i, o, **spade) for i, o in zip(ins, outs))
        self.act = ScaledLeakyReLU(0.2)
        self.to_rgb = EqualConv2d(outs[-1], 3, 3, padding=1)

    def forward(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Synthesise the image (LSR Eq. 3).

        Args:
            cond: the activated layout concatenated with the landmark image, (b, cond_channels, H, W).
            z: z^s, (b, latent_dim).

        Returns:
            (b, 3, image_size, image_size) in [-1, 1].
        """
        b = z.shape[0]
        s = self.start_size
        h = self.fc(z).reshape(b, -1, s, s)  # (b, max, s, s)
        # Resize the condition once per resolution rather than in every SPADE.
        resized: dict[int, torch.Tensor] = {}

        def cond_at(size: int) -> torch.Tensor:
            if size not in resized:
                resized[size] = resize_condition(cond, (size, size))  # (b, cond_channels, size, size)
            return resized[size]

        h = self.head(h, cond_at(s))
        for block in self.middle_blocks:
            h = block(h, cond_at(s))  # (b, max, s, s)
        for block in self.up_blocks:
            h = upsample2x(h)
            h = block(h, cond_at(h.shape[-1]))  # (b, c_j, 2 size, 2 size)
        return torch.tanh(self.to_rgb(self.act(h)))  # (b, 3, image_size, image_size)
