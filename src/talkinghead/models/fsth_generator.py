"""FSTH's generator G(y, e; psi, P) (§3.1, §3.4, A.4).

Johnson et al.'s image-to-image network with residual blocks in place of the resampling
layers: residual downsampling blocks with instance norm encode the landmark image y, then
residual bottleneck blocks and residual upsampling blocks whose instance norms take their
affine coefficients from the person-specific parameters psi_hat = P e (AdaIN), a final
AdaIN, ReLU, a convolution and tanh. Self-attention sits before the last downsampling
block and after the second upsampling block (32 x 32 and 64 x 64 at 256 px).

    psi_hat = P e_hat              (b, adain_dim)    G.project(e_hat)
    x_hat = G(y; psi, psi_hat)     (b, 3, s, s)      G(y, psi_hat)

Splitting P out of the forward pass lets fine-tuning (§3.3) replace P e_NEW by free
parameters psi' and lets inference project a person once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.fsth import GeneratorConfig
from talkinghead.layers.self_attention import SelfAttention
from talkinghead.layers.spectral import sn_conv2d, sn_linear
from talkinghead.models.fsth_blocks import AdaptiveInstanceNorm, AdaptiveResidualBlock, ResidualDownBlock
from talkinghead.models.widths import level_channels


class FSTHGenerator(nn.Module):
    """G: landmark image and person-specific AdaIN parameters -> frame in [-1, 1].

    Args:
        config: widths, depth and attention positions.
        landmark_channels: channels of y.
        embedding_dim: N, the size of e (the input of P).
    """

    def __init__(self, config: GeneratorConfig, landmark_channels: int, embedding_dim: int) -> None:
        super().__init__()
        n = config.num_down_blocks
        down = level_channels(config.base_channels, config.max_channels, n)  # outputs of the down blocks
        self.attention_before_down = config.attention_before_down
        self.attention_after_up = config.attention_after_up
        self.down_blocks = nn.ModuleList(
            ResidualDownBlock(landmark_channels if i == 0 else down[i - 1], down[i], use_norm=True, preactivate=i > 0)
            for i in range(n)
        )
        bottleneck = config.max_channels
        self.bottleneck_blocks = nn.ModuleList(
            AdaptiveResidualBlock(down[-1] if i == 0 else bottleneck, bottleneck)
            for i in range(config.num_bottleneck_blocks)
        )
        previous = bottleneck if config.num_bottleneck_blocks else down[-1]
        up = [down[n - 2 - j] for j in range(n - 1)] + [config.base_channels]  # mirror of the down path
        blocks = []
        for width in up:
            blocks.append(AdaptiveResidualBlock(previous, width, upsample=True))
            previous = width
        self.up_blocks = nn.ModuleList(blocks)
        self.down_attention = (
            SelfAttention(landmark_channels if config.attention_before_down == 0 else down[config.attention_before_down - 1])
            if config.attention_before_down >= 0 else None
        )
        self.up_attention = SelfAttention(up[config.attention_after_up - 1]) if config.attention_after_up else None
        self.out_norm = AdaptiveInstanceNorm(previous)
        self.out_conv = sn_conv2d(previous, 3, 3, padding=1)
        self.adaptive = [*self.bottleneck_blocks, *self.up_blocks, self.out_norm]
        self.adain_dim = sum(m.num_params for m in self.adaptive)
        self.projection = sn_linear(embedding_dim, self.adain_dim, bias=False)  # P

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """psi_hat = P e: (b, N) -> (b, adain_dim)."""
        return self.projection(embedding)

    def forward(self, landmarks: torch.Tensor, adain: torch.Tensor) -> torch.Tensor:
        """(b, c, s, s) landmark images and (b, adain_dim) psi_hat -> (b, 3, s, s) frames."""
        params = adain.split([m.num_params for m in self.adaptive], dim=1)
        x = landmarks
        for i, block in enumerate(self.down_blocks):
            if self.down_attention is not None and i == self.attention_before_down:
                x = self.down_attention(x)
            x = block(x)
        j = 0
        for block in self.bottleneck_blocks:
            x = block(x, params[j])
            j += 1
        for i, block in enumerate(self.up_blocks):
            x = block(x, params[j])
            j += 1
            if self.up_attention is not None and i + 1 == self.attention_after_up:
                x = self.up_attention(x)
        x = F.relu(self.out_norm(x, params[j]))
        return torch.tanh(self.out_conv(x))
