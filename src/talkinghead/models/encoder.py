"""E_l / E_s, the layout and style encoders of LSR (§3.1, appendix A.1).

A residual encoder: a first conv, ``num_down_blocks`` residual blocks with blur pooling
(BigGAN's discriminator blocks, LSR A.1), doubling the feature maps up to a cap, and a fully
connected layer to the latent. The caller concatenates each source frame with its landmark
image (FSTH's practice, LSR A.1) and averages the K latents: z = 1/K sum_i E(I_i) (LSR Eq. 1, 3).
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.config.lsr import EncoderConfig
from talkinghead.layers import DownResBlock, EqualConv2d, EqualLinear, ScaledLeakyReLU
from talkinghead.models.widths import level_channels


class LatentEncoder(nn.Module):
    """E_l or E_s: an image and its landmark image -> one latent (z^l_i or z^s_i).

    Args:
        config: widths, depth and pooling (:class:`EncoderConfig`).
        image_size: side of the square input; needed for ``pooling: flatten``.
        in_channels: 3 + landmark channels (RGB concatenated with the landmark image).
        latent_dim: size of the latent (LSR: 512).
    """

    def __init__(self, config: EncoderConfig, image_size: int, in_channels: int, latent_dim: int) -> None:
        super().__init__()
        if config.pooling not in ("flatten", "mean"):
            raise ValueError(f"encoder.pooling must be 'flatten' or 'mean', got {config.pooling!r}")
        num_blocks = config.num_down_blocks
        final_size = image_size // 2**num_blocks
        if final_size < 1 or image_size % 2**num_blocks:
            raise ValueError(f"encoder: image_size={image_size} is not divisible by 2**num_down_blocks={2**num_blocks}")
        self.config = config
        self.image_size = image_size
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.final_size = final_size
        channels = level_channels(config.base_channels, config.max_channels, num_blocks + 1)
        self.stem = EqualConv2d(in_channels, channels[0], 3, padding=1)
        self.blocks = nn.ModuleList(DownResBlock(channels[i], channels[i + 1]) for i in range(num_blocks))
        self.act = ScaledLeakyReLU(0.2)
        features = channels[-1] * (final_size**2 if config.pooling == "flatten" else 1)
        self.fc = EqualLinear(features, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, in_channels, image_size, image_size) -> latents (n, latent_dim)."""
        if self.config.pooling == "flatten" and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"LatentEncoder was built for {self.image_size}x{self.image_size} inputs (pooling: flatten), "
                f"got {tuple(x.shape[-2:])}; resize the frames or build it for this size"
            )
        h = self.stem(x)  # (n, base, s, s)
        for block in self.blocks:
            h = block(h)  # (n, c_i, s / 2**i, s / 2**i)
        h = self.act(h)  # (n, c, f, f), f = image_size / 2**num_down_blocks
        if self.config.pooling == "flatten":
            h = torch.flatten(h, 1)  # (n, c * f * f)
        else:
            h = h.mean(dim=(2, 3))  # (n, c)
        return self.fc(h)  # (n, latent_dim)
