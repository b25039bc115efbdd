"""ArcFace's IResNet-100 (Deng et al. 2019), the identity network of FSTH's and LPD's CSIM.

The layout follows insightface's ``arcface_torch`` backbones key for key (``conv1``, ``bn1``,
``prelu``, ``layer1`` .. ``layer4`` of :class:`IBasicBlock`, ``bn2``, ``fc``, ``features``),
so the model zoo's ``ms1mv3_arcface_r100_fp16/backbone.pth`` loads strictly. The "improved"
residual block (Duta et al. 2020 style, as in insightface) is pre-activated by a batch norm
and ends in one, with a PReLU between its two 3x3 convolutions and the stride on the second.

Input: an aligned 112 x 112 RGB face (the five-point ArcFace template), scaled to [-1, 1]
(``(x / 255 - 0.5) / 0.5``). Output: the 512-d embedding (before L2 normalisation); identities
are compared by the cosine of two embeddings.

The network is frozen like the VGGs of :mod:`talkinghead.models.vgg`: no gradients to its
weights and always in eval mode (its batch norms must use their running statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from talkinghead.models.frozen import FrozenModule
from talkinghead.weights import (
    load_state_dict,
    load_strict,
    require,
)

ARCFACE_INPUT_SIZE = 112
ARCFACE_EMBEDDING_DIM = 512
# Blocks per stage of insightface's iresnet100.
IRESNET100_LAYERS = (3, 13, 30, 3)
# insightface builds every batch norm with eps=1e-5 (PyTorch's default, written out there).
BN_EPS = 1e-5


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a batch norm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """IResNet's residual block: ``BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN`` + shortcut.

    Args:
        in_channels: channels of the input.
        channels: channels of the output.
        stride: stride of the second convolution (2 at the first block of a stage).
        downsample: the shortcut's 1x1 conv + BN when the shape changes, else identity.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in_channels, h, w) -> (b, channels, h / stride, w / stride)."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.bn1(x))
        out = self.prelu(self.bn2(out))
        out = self.bn3(self.conv2(out))
        return out + shortcut


class IResNet(FrozenModule):
    """ArcFace's IResNet backbone; :func:`iresnet100` is the one with published ArcFace weights.

    Args:
        layers: blocks in each of the four stages; each stage halves the resolution
            (112 -> 56 -> 28 -> 14 -> 7) and the widths are 64, 128, 256, 512.
        embedding_dim: size of the output embedding (``fc`` and ``features``).

    Input: (b, 3, 112, 112) RGB in [-1, 1]. Output: (b, embedding_dim) unnormalised embeddings.
    """

    widths = (64, 128, 256, 512)

    def __init__(self, layers: Sequence[int] = IRESNET100_LAYERS, embedding_dim: int = ARCFACE_EMBEDDING_DIM):
        super().__init__()
        if len(layers) != len(self.widths):
            raise ValueError(f"IResNet needs blocks for {len(self.widths)} stages, got {list(layers)}")
        self.conv1 = conv3x3(3, self.widths[0])
        self.bn1 = nn.BatchNorm2d(self.widths[0], eps=BN_EPS)
        self.prelu = nn.PReLU(self.widths[0])
        in_channels = self.widths[0]
        for index, (num_blocks, width) in enumerate(zip(layers, self.widths), start=1):
            self.add_module(f"layer{index}", self._stage(in_channels, width, num_blocks))
            in_channels = width
        self.bn2 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        side = ARCFACE_INPUT_SIZE // 16  # 7 after four stride-2 stages
        self.fc = nn.Linear(in_channels * side * side, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=BN_EPS)
        self.embedding_dim = embedding_dim
        self.freeze()

    @staticmethod
    def _stage(in_channels: int, width: int, num_blocks: int) -> nn.Sequential:
        """One stage: a stride-2 block with a 1x1 projection shortcut, then ``num_blocks - 1`` more."""
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=1, stride=2, bias=False),
            nn.BatchNorm2d(width, eps=BN_EPS),
        )
        blocks = [IBasicBlock(in_channels, width, stride=2, downsample=downsample)]
        blocks += [IBasicBlock(width, width) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    @classmethod
    def from_registry(cls, purpose: str | None = None) -> IResNet:
        """IResNet-100 with the installed ``arcface`` weights (``arcface_r100_ms1mv3.pth``).

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
            CorruptWeightsError: the file cannot be read safely or its keys/shapes do not match.
        """
        path = require("arcface", purpose)
        state = load_state_dict(path)
        with torch.device("meta"):  # every weight comes from the file: skip the random init
            network = cls(IRESNET100_LAYERS)
        network.to_empty(device="cpu")
        # ``to_empty`` leaves the batch-norm step counters as uninitialised memory; files saved
        # without them (they are unused in eval mode) would keep that, so start them at zero.
        for module in network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.num_batches_tracked is not None:
                module.num_batches_tracked.zero_()
        load_strict(network, state, path, "arcface")  # CorruptWeightsError names the bad keys
        return network

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """Aligned RGB faces in 0..255, (b, 3, 112, 112) -> the network input in [-1, 1]."""
        return images.float() / 127.5 - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, 112, 112) RGB in [-1, 1] -> (b, embedding_dim) embeddings (not normalised)."""
        if x.shape[-2:] != (ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE):
            raise ValueError(
                f"IResNet takes aligned {ARCFACE_INPUT_SIZE}x{ARCFACE_INPUT_SIZE} faces, got {tuple(x.shape)}"
            )
        x = x.to(self.conv1.weight.dtype)
        x = self.prelu(self.bn1(self.conv1(x)))  # (b, 64, 112, 112)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (b, 512, 7, 7)
        x = self.bn2(x).flatten(1)  # (b, 25088), flattened in (c, h, w) order as insightface does
        return self.features(self.fc(x))  # (b, 512)


def iresnet100() -> IResNet:
    """A randomly initialised IResNet-100 (65.2 M parameters); see :meth:`IResNet.from_registry`."""
    return IResNet(IRESNET100_LAYERS)
