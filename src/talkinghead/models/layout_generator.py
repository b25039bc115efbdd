"""G_l, the layout predictor of LSR (§3.1, §3.2, appendix A.1).

``y_t^l, R_t = G_l(x_t, z^l)`` (LSR Eq. 1): a U-Net of residual blocks on the target landmark
image x_t, every block normalised by instance norm + AdaIN from the layout latent z^l.
It predicts the layout y_t^l (segmentation logits during pre-training, a latent layout
afterwards, §3.4) and, for the pre-training regulariser of LSR Eq. 2, an RGB image R_t.
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.config.lsr import LayoutGeneratorConfig
from talkinghead.layers import DownResBlock, EqualConv2d, ScaledLeakyReLU, UpResBlock
from talkinghead.models.widths import level_channels


class LayoutGenerator(nn.Module):
    """G_l: landmark image and z^l -> layout logits (and optionally R_t).

    Contracting path: a conv, then ``num_down_blocks`` :class:`DownResBlock` (blur pooling).
    Expanding path: as many :class:`UpResBlock` (bilinear upsampling); from the second on,
    each takes the previous output concatenated with the contracting path's features of the
    same resolution; a last block at full resolution takes the concatenation with the first
    conv's features. Two conv heads read the result: the layout (``layout_channels``
    logits) and R_t (3 channels, tanh). Feature maps are ``base * 2**level`` capped at
    ``max``.

    Args:
        config: widths, depth, layout channels and activation (:class:`LayoutGeneratorConfig`).
        image_size: side of the square frames (the network is fully convolutional; this
            checks that the innermost map is at least 2x2, which instance norm needs).
        landmark_channels: channels of the landmark image x_t.
        latent_dim: size of z^l.
    """

    def __init__(self, config: LayoutGeneratorConfig, image_size: int, landmark_channels: int, latent_dim: int) -> None:
        super().__init__()
        if config.layout_activation not in ("softmax", "none"):
            raise ValueError(
                f"layout_generator.layout_activation must be 'softmax' or 'none', got {config.layout_activation!r}"
            )
        num_blocks = config.num_down_blocks
        if image_size % 2**num_blocks or image_size // 2**num_blocks < 2:
            raise ValueError(
                f"layout_generator: image_size={image_size} must be divisible by 2**num_down_blocks={2**num_blocks} "
                f"and leave at least a 2x2 innermost map (instance norm); use fewer blocks or a larger size"
            )
        self.config = config
        self.latent_dim = latent_dim
        adain = {"latent_dim": latent_dim}
        channels = level_channels(config.base_channels, config.max_channels, num_blocks + 1)  # level 0 .. n
        self.stem = EqualConv2d(landmark_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownResBlock(channels[level], channels[level + 1], norm="adain", norm_kwargs=adain)
            for level in range(num_blocks)
        )
        # up_blocks[j] brings level n - j to level n - j - 1; all but the first also read a skip.
        self.up_blocks = nn.ModuleList(
            UpResBlock(
                channels[level + 1] * (1 if level == num_blocks - 1 else 2),
                channels[level],
                norm="adain",
                norm_kwargs=adain,
            )
            for level in reversed(range(num_blocks))
        )
        self.out_block = UpResBlock(2 * channels[0], channels[0], norm="adain", norm_kwargs=adain, upsample=False)
        self.act = ScaledLeakyReLU(0.2)
        self.layout_head = EqualConv2d(channels[0], config.layout_channels, 3, padding=1)
        self.rgb_head = EqualConv2d(channels[0], 3, 3, padding=1)

    def forward(
        self, landmarks: torch.Tensor, z: torch.Tensor, with_rgb: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predict the layout (LSR Eq. 1).

        Args:
            landmarks: x_t, (b, landmark_channels, h, w), h and w divisible by 2**num_down_blocks.
            z: z^l, (b, latent_dim).
            with_rgb: also compute R_t (its head is skipped otherwise).

        Returns:
            layout logits (b, layout_channels, h, w) and R_t (b, 3, h, w) in [-1, 1] or None.
        """
        h = self.stem(landmarks)  # (b, c_0, h, w)
        skips = [h]  # skips[level]: (b, c_level, h / 2**level, w / 2**level)
        for block in self.down_blocks:
            h = block(h, z)
            skips.append(h)
        num_blocks = len(self.down_blocks)
        for j, block in enumerate(self.up_blocks):
            if j > 0:
                h = torch.cat([h, skips[num_blocks - j]], dim=1)  # (b, 2 c_level, ...) at level n - j
            h = block(h, z)  # (b, c_{n-j-1}, ...) at level n - j - 1
        h = self.out_block(torch.cat([h, skips[0]], dim=1), z)  # (b, c_0, h, w)
        h = self.act(h)
        layout_logits = self.layout_head(h)  # (b, layout_channels, h, w)
        rgb = torch.tanh(self.rgb_head(h)) if with_rgb else None  # (b, 3, h, w)
        return layout_logits, rgb

    def activate(self, layout_logits: torch.Tensor) -> torch.Tensor:
        """What G_s receives: softmax over the layout channels, or the logits (``layout_activation``).

        (b, C, h, w) -> (b, C, h, w).
        """
        if self.config.layout_activation == "softmax":
            return torch.softmax(layout_logits, dim=1)
        return layout_logits
