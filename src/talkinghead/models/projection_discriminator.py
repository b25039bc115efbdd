"""FSTH's projection discriminator D(x, y, i; theta, W, w0, b) (FSTH §3.2 Eq. 5, FSTH §3.3 Eq. 8).

    r = V(x, y; theta)^T (W_i + w0) + b          meta-learning, video i (FSTH Eq. 5)
    r = V(x, y; theta)^T w' + b                  fine-tuning, w' initialised to w0 + e_NEW (FSTH Eq. 8)

V is the embedder's residual network plus one residual block at the last (4 x 4)
resolution; the columns of W are one embedding per training video.
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.config.fsth import EmbedderConfig, ProjectionDiscriminatorConfig
from talkinghead.models.fsth_embedder import ResidualEmbedder

EMBEDDING_INIT_STD = 0.02  # W and w0 start small, so early scores are driven by V and b


def projection_score(v: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``v^T w + b`` per sample: v (b, N), w (b, N) or (N,), bias () -> (b,)."""
    return (v * w).sum(dim=1) + bias


class ProjectionDiscriminator(nn.Module):
    """D: realism score of a frame with its landmark image for one training video (or a given w').

    Args:
        embedder: the layout of V (shared with E).
        config: number of videos (columns of W) and extra residual blocks.
        in_channels: 3 + landmark channels.
    """

    def __init__(self, embedder: EmbedderConfig, config: ProjectionDiscriminatorConfig, in_channels: int) -> None:
        super().__init__()
        self.body = ResidualEmbedder(embedder, in_channels, extra_blocks=config.extra_blocks)  # V
        n = self.body.out_dim
        self.video_embeddings = nn.Parameter(torch.randn(config.num_videos, n) * EMBEDDING_INIT_STD)  # W^T (videos, N)
        self.w0 = nn.Parameter(torch.randn(n) * EMBEDDING_INIT_STD)
        self.bias = nn.Parameter(torch.zeros(()))

    @property
    def num_videos(self) -> int:
        """Columns of W."""
        return self.video_embeddings.shape[0]

    def forward(self, x: torch.Tensor, video_index: torch.Tensor | None = None,
                realism: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The realism score (b,) and V's activations after every residual block (for L_FM).

        Args:
            x: (b, 3 + c, s, s) frame ++ landmark image.
            video_index: (b,) int64 training-video indices i (FSTH Eq. 5).
            realism: (N,) or (b, N) the fine-tuning vector w' (FSTH Eq. 8), used instead of W_i + w0.
        """
        v, feats = self.body.features(x)
        if realism is not None:
            w = realism
        elif video_index is not None:
            w = self.video_embeddings[video_index] + self.w0
        else:
            raise ValueError("the projection discriminator needs a video_index (FSTH Eq. 5) or a realism vector w' (FSTH Eq. 8)")
        return projection_score(v, w.to(v.dtype), self.bias.to(v.dtype)), feats
