"""Schema of the temporal super-resolution module (MetaPortrait §3.3): architecture and training.

``kind: upscale`` files (``configs/upscale/*.yaml``) are trained by ``talkinghead train`` through
the standalone-trainer registry (:mod:`talkinghead.training.standalone`), not through a method
recipe: the module post-processes any method's output and is not a talking-head method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from talkinghead.config.base import ConfigError, register_config


@dataclass
class UpscaleModelConfig:
    """Architecture of :class:`talkinghead.models.temporal_sr.TemporalSuperResolution`.

    Args:
        num_neighbors: frames on each side of the centre frame in the window (window
            ``2 * num_neighbors + 1``).
        base_channels: feature channels at full input resolution.
        channel_multipliers: channels at each U-Net scale relative to ``base_channels``; one
            entry per scale, each scale halving the resolution of the one before.
        num_blocks: residual blocks per scale in the encoder and in the decoder.
    """

    num_neighbors: int = 1
    base_channels: int = 32
    channel_multipliers: list[int] = field(default_factory=lambda: [1, 2, 2])
    num_blocks: int = 1

    def __post_init__(self):
        if self.num_neighbors < 0:
            raise ConfigError(f"model.num_neighbors must be >= 0, got {self.num_neighbors}")
        if self.base_channels < 1 or self.num_blocks < 0:
            raise ConfigError("model.base_channels must be >= 1 and model.num_blocks >= 0")
        if not self.channel_multipliers or min(self.channel_multipliers) < 1:
            raise ConfigError(f"model.channel_multipliers must list positive ints, got {self.channel_multipliers}")

    @property
    def window(self) -> int:
        """Frames per window."""
        return 2 * self.num_neighbors + 1


@dataclass
class UpscaleTrainOptions:
    """How the super-resolution module trains.

    Args:
        steps: optimiser steps.
        batch_size: windows per step.
        patch_size: side of the random low-resolution patch (the target is twice it); the
            network is fully convolutional, so patches train it for any frame size.
        lr: Adam learning rate (decayed linearly to 10% over the second half of ``steps``).
        l1: weight of the per-pixel L1 loss.
        perceptual: weight of the perceptual term: VGG19 features when installed, else the
            offline image-pyramid L1 (``perceptual_network: auto``).
        perceptual_network: ``auto`` (VGG19 when installed), ``vgg19`` (required) or ``pyramid``.
        temporal: weight of the temporal term: L1 between the predicted and the true change
            from frame t to frame t + 1 (two adjacent centre frames are predicted per sample).
        ema_decay: decay of the exponential moving average of the weights (what is released).
        seed: seed of the weights and the patch sampling.
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: ordinary checkpoints kept.
        log_every: steps between progress lines.
        threads: torch CPU threads (0: leave torch's default).
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    steps: int = 2000
    batch_size: int = 4
    patch_size: int = 64
    lr: float = 5e-4
    l1: float = 1.0
    perceptual: float = 1.0
    perceptual_network: str = "auto"
    temporal: float = 1.0
    ema_decay: float = 0.99
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 20
    threads: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.patch_size < 8:
            raise ConfigError("train.steps and train.batch_size must be >= 1 and train.patch_size >= 8")
        if self.perceptual_network not in ("auto", "vgg19", "pyramid"):
            raise ConfigError(f"train.perceptual_network must be auto, vgg19 or pyramid, got {self.perceptual_network!r}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.log_every < 1:
            raise ConfigError("train.checkpoint_every, train.keep_checkpoints and train.log_every must be >= 1")


@register_config("upscale")
@dataclass
class UpscaleTrainConfig:
    """A ``kind: upscale`` training run: data, architecture, training options.

    Args:
        data_root: folder written by ``talkinghead prepare-sr``.
        model: the architecture.
        train: the training options.
    """

    data_root: str = ""
    model: UpscaleModelConfig = field(default_factory=UpscaleModelConfig)
    train: UpscaleTrainOptions = field(default_factory=UpscaleTrainOptions)
