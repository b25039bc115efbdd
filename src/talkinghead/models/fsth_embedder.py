"""FSTH's embedder E(x, y; phi) and the ConvNet part V(x, y; theta) of its discriminator (§3.4, A.4).

Both read an RGB frame concatenated with its landmark image and run pre-activated residual
downsampling blocks without normalisation (widths ``base * 2**i`` capped at ``max``), with
self-attention after ``attention_after`` of them; V adds ``extra_blocks`` residual blocks at
the last resolution. The map goes through ReLU and is sum-pooled over space to an
N-dimensional vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.fsth import EmbedderConfig
from talkinghead.layers.self_attention import SelfAttention
from talkinghead.models.fsth_blocks import ResidualDownBlock
from talkinghead.models.widths import level_channels


class ResidualEmbedder(nn.Module):
    """(frame ++ landmark image) -> N-vector, and the activations after every residual block.

    Args:
        config: widths, depth and attention position.
        in_channels: 3 + landmark channels.
        extra_blocks: residual blocks at the last resolution (E: 0; V of D: 1, at 4 x 4).
    """

    def __init__(self, config: EmbedderConfig, in_channels: int, extra_blocks: int = 0) -> None:
        super().__init__()
        widths = level_channels(config.base_channels, config.max_channels, config.num_down_blocks)
        self.attention_after = config.attention_after
        blocks = []
        previous = in_channels
        for i, width in enumerate(widths):
            blocks.append(ResidualDownBlock(previous, width, preactivate=i > 0))
            previous = width
        blocks += [ResidualDownBlock(previous, previous, downsample=False) for _ in range(extra_blocks)]
        self.blocks = nn.ModuleList(blocks)
        self.attention = SelfAttention(widths[config.attention_after - 1]) if config.attention_after else None
        self.out_dim = previous

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(b, in_channels, s, s) -> the vector (b, N) and the output of every residual block."""
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            feats.append(x)
            if self.attention is not None and i + 1 == self.attention_after:
                x = self.attention(x)
        return F.relu(x).sum(dim=(2, 3)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in_channels, s, s) -> (b, N)."""
        return self.features(x)[0]


def embed_frames(embedder: nn.Module, images: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FSTH Eq. 1: the per-frame embeddings E(x(s_k), y(s_k)) and their mean e_hat.

    Args:
        embedder: E.
        images: (b, k, 3, s, s) frames in [-1, 1].
        landmarks: (b, k, c, s, s) their landmark images.

    Returns:
        ((b, k, N) per-frame embeddings, (b, N) their mean).
    """
    if images.ndim != 5 or landmarks.ndim != 5 or images.shape[:2] != landmarks.shape[:2]:
        raise ValueError(
            f"expected (b, k, c, h, w) images and landmarks, got {tuple(images.shape)} and {tuple(landmarks.shape)}"
        )
    b, k = images.shape[:2]
    x = torch.cat([images, landmarks.to(images.dtype)], dim=2).flatten(0, 1)  # (b * k, 3 + c, s, s)
    per_frame = embedder(x).reshape(b, k, -1)
    return per_frame, per_frame.mean(dim=1)
