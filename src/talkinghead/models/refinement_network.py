"""The ID-preserving refinement network of MetaPortrait §3.1 Eq. 1-2: a cascade of fusion blocks.

In fusion block l, with h_in the block's input features:

    h_id     = AdaIN(h_in, z_id)                    identity-aware features
    h_motion = Conv(I~_s) * h_id + Conv(I~_s)       motion-aware (FiLM from the warped image)
    M        = sigmoid(Conv(h_in))                   (MetaPortrait Eq. 1)
    h_out    = M * h_motion + (1 - M) * h_id        (MetaPortrait Eq. 2)

Where this differs from the paper's equations (and from the official code, which puts the
same idea inside a SPADE generator as ``a * SPADE + (1 - a) * AdaIN(z_id)``):

* the FiLM scale is written ``1 + Conv(I~_s)`` (the conv's bias absorbs the 1), so an
  untrained block passes h_id through instead of zeroing it;
* fusion blocks come in pairs inside residual blocks (fuse -> LeakyReLU -> conv, twice, plus
  a shortcut), as SPADE's residual blocks do;
* the network's input h_in is the source's encoder features warped by the flow and
  multiplied by the occlusion map (MetaPortrait warps "the source image and its features").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.metaportrait import RefinementNetworkConfig
from talkinghead.layers.adain import AdaIN
from talkinghead.layers.inference_rewrites import pair_convs, register_inference_rewrite
from talkinghead.models.warping import warp
from talkinghead.models.widths import level_channels


def fuse(mask: torch.Tensor, h_motion: torch.Tensor, h_id: torch.Tensor) -> torch.Tensor:
    """MetaPortrait Eq. 2: ``M * h_motion + (1 - M) * h_id`` (mask (b, 1, h, w) broadcast over channels)."""
    return mask * h_motion + (1.0 - mask) * h_id


class FusionBlock(nn.Module):
    """One attention-based fusion block (MetaPortrait Eq. 1-2): identity path, motion path, learned mask.

    Args:
        channels: feature maps of h_in (= of h_out).
        id_dim: size of z_id.
        film_hidden_channels: feature maps of the conv that reads the warped image.
    """

    def __init__(self, channels: int, id_dim: int, film_hidden_channels: int):
        super().__init__()
        self.id_norm = AdaIN(channels, id_dim)
        self.film_shared = nn.Sequential(nn.Conv2d(3, film_hidden_channels, 3, padding=1), nn.ReLU())
        self.film_scale = nn.Conv2d(film_hidden_channels, channels, 3, padding=1)
        self.film_shift = nn.Conv2d(film_hidden_channels, channels, 3, padding=1)
        self.mask_conv = nn.Conv2d(channels, 1, 3, padding=1)

    def identity_path(self, h_in: torch.Tensor, z_id: torch.Tensor) -> torch.Tensor:
        """h_id = AdaIN(h_in, z_id): (b, C, h, w), (b, id_dim) -> (b, C, h, w)."""
        return self.id_norm(h_in, z_id)

    def motion_path(self, h_id: torch.Tensor, warped_image: torch.Tensor) -> torch.Tensor:
        """h_motion = (1 + Conv(I~_s)) * h_id + Conv(I~_s); the warped image is resized to h_id's size."""
        image = F.interpolate(warped_image, size=h_id.shape[-2:], mode="bilinear", align_corners=False,
                              antialias=False) if warped_image.shape[-2:] != h_id.shape[-2:] else warped_image
        hidden = self.film_shared(image.to(h_id.dtype))
        return (1.0 + self.film_scale(hidden)) * h_id + self.film_shift(hidden)

    def mask(self, h_in: torch.Tensor) -> torch.Tensor:
        """M = sigmoid(Conv(h_in)) (MetaPortrait Eq. 1): (b, C, h, w) -> (b, 1, h, w)."""
        return torch.sigmoid(self.mask_conv(h_in))

    def forward(self, h_in: torch.Tensor, z_id: torch.Tensor, warped_image: torch.Tensor) -> torch.Tensor:
        """(b, C, h, w) features, (b, id_dim) z_id, (b, 3, H, W) warped source -> (b, C, h, w) h_out."""
        h_id = self.identity_path(h_in, z_id)
        return fuse(self.mask(h_in), self.motion_path(h_id, warped_image), h_id)


class FusedFusionBlock(FusionBlock):
    """:class:`FusionBlock` whose FiLM scale and shift run as one convolution (its exact inference rewrite).

    Both read the same hidden map: one convolution, with the ``1 +`` folded into the scale's bias.
    """

    def motion_path(self, h_id: torch.Tensor, warped_image: torch.Tensor) -> torch.Tensor:
        """h_motion = (1 + Conv(I~_s)) * h_id + Conv(I~_s), with both convs in one call."""
        image = F.interpolate(warped_image, size=h_id.shape[-2:], mode="bilinear", align_corners=False,
                              antialias=False) if warped_image.shape[-2:] != h_id.shape[-2:] else warped_image
        hidden = self.film_shared(image.to(h_id.dtype))
        both = F.conv2d(hidden, self.paired_weight, self.paired_bias, padding=self.film_scale.padding)  # (b, 2C, h, w)
        channels = h_id.shape[1]
        return torch.addcmul(both[:, channels:], both[:, :channels], h_id)


register_inference_rewrite(FusionBlock, "fusion_block",
                           lambda module: pair_convs(module, FusedFusionBlock, "film_scale", "film_shift"))


class FusionResBlock(nn.Module):
    """fuse -> LeakyReLU -> conv, twice, plus a (1x1 conv) shortcut: one step of the cascade."""

    def __init__(self, in_channels: int, out_channels: int, id_dim: int, film_hidden_channels: int):
        super().__init__()
        self.fuse1 = FusionBlock(in_channels, id_dim, film_hidden_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.fuse2 = FusionBlock(out_channels, id_dim, film_hidden_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, z_id: torch.Tensor, warped_image: torch.Tensor) -> torch.Tensor:
        """(b, C_in, h, w) -> (b, C_out, h, w)."""
        y = self.conv1(F.leaky_relu(self.fuse1(x, z_id, warped_image), 0.2))
        y = self.conv2(F.leaky_relu(self.fuse2(y, z_id, warped_image), 0.2))
        return y + (self.shortcut(x) if self.shortcut is not None else x)


class SourceEncoder(nn.Module):
    """The source features the flow warps: a stem and stride-2 convs with instance norm."""

    def __init__(self, widths: list[int]):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 7, padding=3), nn.InstanceNorm2d(widths[0], affine=True),
                                   nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.InstanceNorm2d(c_out, affine=True),
                       nn.LeakyReLU(0.2)]
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(b, 3, s, s) -> (b, C, s / 2**d, s / 2**d)."""
        return self.layers(image)


class RefinementNetwork(nn.Module):
    """G_r: warped source features through a cascade of fusion residual blocks to the output image.

    Args:
        config: widths and depth.
        id_dim: size of z_id.
    """

    def __init__(self, config: RefinementNetworkConfig, id_dim: int):
        super().__init__()
        widths = level_channels(config.base_channels, config.max_channels, config.num_down_blocks + 1)
        hidden = config.film_hidden_channels
        self.source_encoder = SourceEncoder(widths)
        self.bottleneck = nn.ModuleList(
            FusionResBlock(widths[-1], widths[-1], id_dim, hidden) for _ in range(config.num_bottleneck_blocks)
        )
        # up block i goes from level i + 1 to level i
        self.up = nn.ModuleList(
            FusionResBlock(widths[i + 1], widths[i], id_dim, hidden) for i in range(config.num_down_blocks)
        )
        self.to_rgb = nn.Conv2d(widths[0], 3, 3, padding=1)
        self.residual = config.residual
        if self.residual:  # start as the identity on I~_s
            nn.init.zeros_(self.to_rgb.weight)
            nn.init.zeros_(self.to_rgb.bias)

    def encode_source(self, source_image: torch.Tensor) -> torch.Tensor:
        """The source's features (computed once per person): (b, 3, s, s) -> (b, C, s / 2**d, s / 2**d)."""
        return self.source_encoder(source_image)

    def forward(self, source_features: torch.Tensor | None, flow: torch.Tensor, occlusion: torch.Tensor,
                warped_image: torch.Tensor, z_id: torch.Tensor, *,
                source_image: torch.Tensor | None = None) -> torch.Tensor:
        """The refined frame I~_y.

        Args:
            source_features: (b, C, s', s') from :meth:`encode_source` (a person's cached state),
                or None to encode ``source_image`` here (training: through any DDP wrapper).
            flow: (b, 2, s, s) F_w's flow (normalised units).
            occlusion: (b, 1, s, s) F_w's occlusion map in (0, 1).
            warped_image: (b, 3, s, s) I~_s, the source warped by the flow.
            z_id: (b, id_dim) identity code.
            source_image: (b, 3, s, s) I_s, when ``source_features`` is None.

        Returns:
            (b, 3, s, s) in [-1, 1]: tanh of the last conv, or with ``config.residual`` I~_s plus
            the last conv, clamped.
        """
        if source_features is None:
            if source_image is None:
                raise ValueError("RefinementNetwork needs source_features or source_image")
            source_features = self.encode_source(source_image)
        h = warp(source_features, flow)
        h = h * F.interpolate(occlusion, size=h.shape[-2:], mode="bilinear", align_corners=False).to(h.dtype)
        for block in self.bottleneck:
            h = block(h, z_id, warped_image)
        for block in reversed(self.up):
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = block(h, z_id, warped_image)
        rgb = self.to_rgb(F.leaky_relu(h, 0.2))
        if self.residual:
            return (warped_image.to(rgb.dtype) + rgb).clamp(-1.0, 1.0)
        return torch.tanh(rgb)
