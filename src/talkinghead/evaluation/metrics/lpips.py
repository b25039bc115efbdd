"""LPIPS: learned perceptual image patch similarity (Zhang et al. 2018), v0.1 with the AlexNet backbone.

The distance the official ``lpips`` package computes with ``LPIPS(net="alex", version="0.1")``:
both images, RGB in [-1, 1], go through the scaling layer ``(x - shift) / scale`` and AlexNet;
at each of the five ReLU outputs the features are unit-normalised along the channels, their
squared difference is weighted per channel by a 1x1 convolution ``lin_l`` (no bias, one output)
and averaged over the positions; the five values are summed (LPIPS Eq. 1):

    d(x, x0) = sum_l mean_{h,w} || w_l * (y_l(x) - y_l(x0)) ||^2,   y_l = f_l / ||f_l||_channels

The weights are torchvision's ImageNet AlexNet (asset ``alexnet``) and the official v0.1
calibration ``alex.pth`` (asset ``lpips_alex``, keys ``lin0.model.1.weight`` ..
``lin4.model.1.weight``, index 1 because index 0 of each ``model`` is a Dropout).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from talkinghead.evaluation.metrics.base import (
    MetricUnavailable,
    check_pairs,
    register_metric,
)
from talkinghead.models.alexnet import ALEXNET_CHANNELS, AlexNetFeatures
from talkinghead.models.frozen import FrozenModule
from talkinghead.weights import (
    MissingWeightsError,
    load_state_dict,
    load_strict,
    require,
)

# The official ScalingLayer constants: an ImageNet-like normalisation of [-1, 1] RGB.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# Added to the feature norm before dividing (the official normalize_tensor's eps).
NORM_EPS = 1e-10
PURPOSE = "the LPIPS metric"


def normalize_channels(features: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Each position's feature vector divided by its L2 norm: (b, c, h, w) -> (b, c, h, w)."""
    norm = features.square().sum(dim=1, keepdim=True).sqrt()  # (b, 1, h, w)
    return features / (norm + eps)


class LinearCalibration(nn.Module):
    """One ``lin_l`` layer: a channel weighting (1x1 conv, c -> 1, no bias) of a squared feature difference.

    ``model`` mirrors the official ``NetLinLayer`` (Dropout, Conv2d) so the file's
    ``model.1.weight`` loads; the dropout only acted during calibration training and this layer
    is always in eval mode.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, h, w) -> (b, 1, h, w)."""
        return self.model(x)


class LPIPSCalibration(nn.Module):
    """The five calibration layers ``lin0`` .. ``lin4`` (1152 weights), in the layout of ``alex.pth``."""

    def __init__(self, channels: tuple[int, ...] = ALEXNET_CHANNELS) -> None:
        super().__init__()
        for index, width in enumerate(channels):
            self.add_module(f"lin{index}", LinearCalibration(width))
        self.num_layers = len(channels)

    def layers(self) -> list[LinearCalibration]:
        """``[lin0, ..., lin4]``."""
        return [self._modules[f"lin{index}"] for index in range(self.num_layers)]

    @classmethod
    def from_registry(cls, purpose: str | None = None) -> LPIPSCalibration:
        """The installed ``lpips_alex`` weights (``lpips_alex_v0.1.pth``), loaded strictly.

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
            CorruptWeightsError: the file cannot be read safely or its keys do not match.
        """
        path = require("lpips_alex", purpose)
        state = load_state_dict(path)
        calibration = cls()
        load_strict(calibration, state, path, "lpips_alex")  # CorruptWeightsError names the bad keys
        return calibration


class LPIPSNetwork(FrozenModule):
    """The LPIPS distance between image batches (frozen, always in eval mode).

    Args:
        backbone: AlexNet features (relu1 .. relu5).
        calibration: the five ``lin`` layers matching the backbone's widths.
    """

    def __init__(self, backbone: AlexNetFeatures, calibration: LPIPSCalibration) -> None:
        super().__init__()
        self.backbone = backbone
        self.calibration = calibration
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.freeze()  # the calibration's dropout must never act

    @classmethod
    def from_registry(cls, purpose: str | None = None) -> LPIPSNetwork:
        """The network with the installed ``alexnet`` and ``lpips_alex`` weights."""
        return cls(AlexNetFeatures.from_registry(purpose), LPIPSCalibration.from_registry(purpose))

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS distances.

        Args:
            x0, x1: (b, 3, h, w) RGB in [-1, 1], h, w >= 32 (so that relu5 keeps a pixel).

        Returns:
            (b,) distances (0 for identical images), in the backbone's dtype.
        """
        # Both batches through the backbone at once: one pass of every convolution.
        x = torch.cat([x0, x1], dim=0).to(self.shift.dtype)
        features = self.backbone((x - self.shift) / self.scale)  # 5 x (2b, c_l, h_l, w_l)
        total = x0.new_zeros(x0.shape[0], dtype=features[0].dtype)
        for feature, lin in zip(features, self.calibration.layers()):
            f0, f1 = normalize_channels(feature).chunk(2, dim=0)  # (b, c_l, h_l, w_l) each
            total = total + lin((f0 - f1).square()).mean(dim=(1, 2, 3))  # (b,)
        return total


def _uint8_to_signed(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(n, h, w, 3) uint8 -> (n, 3, h, w) float32 in [-1, 1] on ``device`` (the official im2tensor)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


@register_metric(
    "lpips",
    "frame",
    higher_is_better=False,
    description="LPIPS v0.1 (AlexNet backbone, official linear calibration) on RGB frames mapped to [-1, 1]",
    requires=("alexnet", "lpips_alex"),
)
class LPIPS:
    """LPIPS metric: ``metric(outputs, targets) -> (n,)`` distances, lower is more similar.

    Args:
        device: where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        batch_size: frame pairs per forward pass.

    Raises:
        MetricUnavailable: a weight file is missing (the reason names every missing file and
            the ``talkinghead weights add`` command that installs it).
        CorruptWeightsError: an installed file is unreadable or is not the network it should be.
    """

    def __init__(self, *, device: str | torch.device = "cpu", batch_size: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        problems = []
        for name in ("alexnet", "lpips_alex"):
            try:
                require(name, PURPOSE)
            except MissingWeightsError as err:
                problems.append(str(err))
        if problems:
            raise MetricUnavailable("lpips", " ".join(problems))
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.network = LPIPSNetwork.from_registry(PURPOSE).to(self.device)

    @torch.no_grad()
    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Per-frame LPIPS.

        Args:
            outputs: (n, h, w, 3) uint8 generated frames, h, w >= 32.
            targets: (n, h, w, 3) uint8 ground-truth frames.

        Returns:
            (n,) float64 distances.
        """
        outputs, targets = check_pairs(outputs, targets)
        values = np.empty(len(outputs), dtype=np.float64)
        for start in range(0, len(outputs), self.batch_size):
            stop = start + self.batch_size
            x0 = _uint8_to_signed(outputs[start:stop], self.device)
            x1 = _uint8_to_signed(targets[start:stop], self.device)
            values[start:stop] = self.network(x0, x1).double().cpu().numpy()
        return values
