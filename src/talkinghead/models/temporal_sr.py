"""Temporal super-resolution network (MetaPortrait §3.3): a windowed U-Net that doubles resolution.

MetaPortrait upsamples 256 px output to 512 px with a U-Net over a window of adjacent frames.
The paper's text says 3-D convolutions; the official code fuses each neighbouring frame's
features into the centre frame's through zero-initialised residual convolutions at every
scale. This follows the official code's neighbour fusion, because

* at initialisation the fusion adds exactly zero, so the network starts as a single-frame
  super-resolver and learns only as much temporal mixing as helps (a 3-D convolution starts
  mixing frames blindly);
* every frame goes through the same 2-D encoder, so the per-frame cost is a 2-D U-Net's and the
  network runs on frames of any size and any window length without 3-D padding choices.

Shapes: ``(b, t, 3, h, w)`` windows of ``t = 2 * num_neighbors + 1`` frames in [0, 1], centre
frame in the middle; output ``(b, 3, 2h, 2w)``, the centre frame at twice the size, as the
bicubic upsampling of the centre frame plus a learned residual. Any ``h, w`` work: frames are
edge-padded to a multiple of the U-Net's stride and the output is cropped back to exactly 2x.
The StyleGAN2 face prior of the official code is not included (its weights are not in the
weights registry).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.upscale import UpscaleModelConfig


class ResidualBlock(nn.Module):
    """``x + conv(lrelu(conv(x)))`` at constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class NeighborFusion(nn.Module):
    """Adds the window's neighbouring features to the centre's through a zero-initialised conv.

    ``fused = centre + conv([centre, neighbour_1, ..., neighbour_n])``; the conv's weights and
    bias start at zero, so an untrained fusion is the identity on the centre frame.

    Args:
        channels: feature channels at this scale.
        num_frames: frames in the window (the centre included).
    """

    def __init__(self, channels: int, num_frames: int):
        super().__init__()
        self.conv = nn.Conv2d(channels * num_frames, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, features: torch.Tensor, center: int) -> torch.Tensor:
        """``features`` (b, t, c, h, w) -> (b, c, h, w)."""
        b, t, c, h, w = features.shape
        others = [features[:, center]] + [features[:, i] for i in range(t) if i != center]
        return features[:, center] + self.conv(torch.cat(others, dim=1))


class TemporalSuperResolution(nn.Module):
    """Windowed U-Net with neighbour fusion at every scale; 2x upsampling of the centre frame.

    Args:
        config: the architecture (:class:`UpscaleModelConfig`).
    """

    def __init__(self, config: UpscaleModelConfig):
        super().__init__()
        self.config = config
        widths = [config.base_channels * m for m in config.channel_multipliers]
        self.num_frames = config.window
        self.stride = 2 ** (len(widths) - 1)
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1)
        # Encoder (shared by every frame of the window): scale 0 at full size, each next one halves.
        self.downs = nn.ModuleList()
        self.encoder_blocks = nn.ModuleList()
        for i, width in enumerate(widths):
            self.downs.append(nn.Identity() if i == 0 else nn.Conv2d(widths[i - 1], width, 3, stride=2, padding=1))
            self.encoder_blocks.append(nn.Sequential(*[ResidualBlock(width) for _ in range(config.num_blocks)]))
        self.fusions = nn.ModuleList([NeighborFusion(width, self.num_frames) for width in widths])
        # Decoder: from the coarsest scale up, each level merges the fused skip of its scale.
        self.ups = nn.ModuleList()
        self.decoder_blocks = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.ups.append(nn.Conv2d(widths[i] + widths[i - 1], widths[i - 1], 3, padding=1))
            self.decoder_blocks.append(nn.Sequential(*[ResidualBlock(widths[i - 1]) for _ in range(config.num_blocks)]))
        # 2x output: sub-pixel convolution (4 sub-pixel positions per channel), then RGB.
        self.to_sub_pixels = nn.Conv2d(widths[0], widths[0] * 4, 3, padding=1)
        self.to_rgb = nn.Conv2d(widths[0], 3, 3, padding=1)
        # A small residual at initialisation: the untrained network is close to bicubic.
        with torch.no_grad():
            self.to_rgb.weight.mul_(0.1)
            self.to_rgb.bias.zero_()

    def _encode(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """(n, 3, h, w) -> one (n, c_s, h / 2^s, w / 2^s) feature map per scale s."""
        x = F.leaky_relu(self.stem(frames * 2 - 1), 0.2)
        features = []
        for down, block in zip(self.downs, self.encoder_blocks):
            x = block(F.leaky_relu(down(x), 0.2) if not isinstance(down, nn.Identity) else x)
            features.append(x)
        return features

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """Super-resolve the centre frame of each window.

        Args:
            window: (b, t, 3, h, w) frames in [0, 1], ``t`` = :attr:`num_frames`.

        Returns:
            (b, 3, 2h, 2w) the centre frame at twice the size (not clamped to [0, 1]).
        """
        b, t, c, h, w = window.shape
        if t != self.num_frames or c != 3:
            raise ValueError(f"expected (b, {self.num_frames}, 3, h, w) windows, got {tuple(window.shape)}")
        center = t // 2
        pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
        frames = window.reshape(b * t, c, h, w)
        if pad_h or pad_w:
            frames = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")
        per_scale = self._encode(frames)  # each (b * t, c_s, h_s, w_s)
        fused = [fusion(f.reshape(b, t, *f.shape[1:]), center) for fusion, f in zip(self.fusions, per_scale)]
        x = fused[-1]
        for k, (up, block) in enumerate(zip(self.ups, self.decoder_blocks)):
            skip = fused[-2 - k]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(F.leaky_relu(up(torch.cat([x, skip], dim=1)), 0.2))
        x = F.leaky_relu(F.pixel_shuffle(self.to_sub_pixels(x), 2), 0.2)  # (b, c0, 2H, 2W)
        residual = self.to_rgb(x)[..., : 2 * h, : 2 * w]
        base = F.interpolate(window[:, center], scale_factor=2, mode="bicubic", align_corners=False)
        return base + residual


UPSCALER_NETWORK = "upscaler"  # the network's file name in a release folder: upscaler.safetensors
UPSCALER_KIND = "upscale"  # config.json's "kind" of a super-resolution release


def load_upscaler(path: str | Path, device: str | torch.device = "cpu") -> TemporalSuperResolution:
    """Load a super-resolution release folder (``config.json`` + ``upscaler.safetensors``).

    Args:
        path: the release folder (e.g. ``models/upscale`` or ``RUN_DIR/release``).
        device: where the weights go.

    Raises:
        ReleaseError: the folder is missing, incomplete, or holds another kind of model.
    """
    from talkinghead.config.base import from_dict
    from talkinghead.weights.release import ReleaseError, load_release

    info, states = load_release(path, device=device)
    if info.get("kind") != UPSCALER_KIND or UPSCALER_NETWORK not in states:
        raise ReleaseError(
            f"{path}: is not a super-resolution model (config.json kind {info.get('kind', info.get('method'))!r}, "
            f"networks {sorted(states)}); give a folder written by `talkinghead train configs/upscale/...` "
            "(RUN_DIR/release) or the bundled models/upscale"
        )
    network = TemporalSuperResolution(from_dict(UpscaleModelConfig, info.get("model", {}), f"{path}/config.json model"))
    try:
        network.load_state_dict(states[UPSCALER_NETWORK])
    except RuntimeError as err:
        raise ReleaseError(f"{path}: the weights do not fit the architecture in its config.json ({err})") from err
    return network.to(device).eval().requires_grad_(False)
