"""The Inception-v3 of the FID metric (Heusel et al. 2017), as ported by pytorch-fid.

FID is defined on the pool3 features of the TensorFlow Inception graph of 2015-12-05. pytorch-fid
ports its weights (``pt_inception-2015-12-05-6726825d.pth``) into torchvision's Inception-v3
layout, with 1008 output classes, no auxiliary classifier and four differences in the blocks
that make it reproduce TensorFlow's activations:

* every average-pooling branch (Mixed_5b-5d, Mixed_6b-6e, Mixed_7b) ignores the zero padding
  in its mean (TensorFlow's ``SAME`` average pool: ``count_include_pad=False``);
* the pooling branch of the last block, Mixed_7c, takes a 3x3 *max* pool instead of an average.

The key names are torchvision's: ``Conv2d_1a_3x3.conv.weight``, ``Conv2d_1a_3x3.bn.running_var``,
``Mixed_5b.branch5x5_1.conv.weight``, ``Mixed_7c.branch3x3dbl_3b.bn.bias``, ..., ``fc.weight``
(1008, 2048). Every convolution is bias-free and followed by a batch norm (eps 0.001) and a ReLU.

:class:`InceptionFID` returns the 2048-d pool3 features (global average of Mixed_7c); the ``fc``
classifier is not built. It is frozen (no gradients, always eval mode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.models.frozen import FrozenModule
from talkinghead.weights import (
    load_state_dict,
    load_strict,
    require,
)

FID_INPUT_SIZE = 299
FID_FEATURE_DIM = 2048

_KernelSize = int | tuple[int, int]


class BasicConv2d(nn.Module):
    """Bias-free convolution, batch norm (eps 0.001, TensorFlow's) and ReLU: ``.conv`` / ``.bn`` keys."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _KernelSize,
                 stride: int = 1, padding: _KernelSize = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _same_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose border means leave out the padding (TensorFlow ``SAME``)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """Inception block A (Mixed_5b-5d): 1x1, 5x5, double 3x3 and pool branches; 224 + pool_features out."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_same_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool], dim=1)


class InceptionB(nn.Module):
    """Grid reduction block B (Mixed_6a): stride-2 3x3, double 3x3 and max-pool branches; 480 + in out."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.branch3x3(x), branch3x3dbl, branch_pool], dim=1)


class FIDInceptionC(nn.Module):
    """Inception block C (Mixed_6b-6e) with factorised 1x7 / 7x1 convolutions; 768 out."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        branch_pool = self.branch_pool(_same_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, branch_pool], dim=1)


class InceptionD(nn.Module):
    """Grid reduction block D (Mixed_7a): stride-2 3x3, 7x7-then-3x3 and max-pool branches; 512 + in out."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            branch7x7x3 = layer(branch7x7x3)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], dim=1)


class FIDInceptionE(nn.Module):
    """Inception block E (Mixed_7b, Mixed_7c) with split 1x3 / 3x1 outputs; 2048 out.

    Args:
        in_channels: input width (1280 for Mixed_7b, 2048 for Mixed_7c).
        pool: ``"avg"`` (padding-excluding average, Mixed_7b) or ``"max"`` (Mixed_7c: the
            TensorFlow graph max-pools here, which the FID weights were computed with).
    """

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], dim=1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], dim=1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _same_avg_pool(x)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)], dim=1)


class InceptionFID(FrozenModule):
    """Inception-v3 up to pool3, the feature extractor of FID (pytorch-fid's ``InceptionV3``, block 3).

    Input: (b, 3, h, w) RGB in [0, 1]. As pytorch-fid does (``resize_input``, ``normalize_input``),
    the images are resized to 299 x 299 bilinearly (``align_corners=False``, no antialiasing) and
    mapped to [-1, 1]. Output: (b, 2048) pool3 features.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)  # 35 x 35 x 256
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)  # 35 x 35 x 288
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)  # 35 x 35 x 288
        self.Mixed_6a = InceptionB(288)  # 17 x 17 x 768
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)  # 8 x 8 x 1280
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")  # 8 x 8 x 2048
        self.Mixed_7c = FIDInceptionE(2048, pool="max")  # 8 x 8 x 2048
        self.freeze()  # the batch norms always use their running statistics

    @classmethod
    def from_registry(cls, purpose: str | None = None) -> InceptionFID:
        """The network with the installed ``inception_fid`` weights (``pt_inception-2015-12-05-6726825d.pth``).

        The file's ``fc.weight`` / ``fc.bias`` (the 1008-way classifier) are ignored on purpose:
        FID uses the pool3 features. Every other tensor must be there with its shape
        (``num_batches_tracked`` counters may be absent).

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
            CorruptWeightsError: the file cannot be read safely or its keys do not match.
        """
        path = require("inception_fid", purpose)
        state = {key: value for key, value in load_state_dict(path).items() if not key.startswith("fc.")}
        with torch.device("meta"):  # every weight comes from the file: skip the random init
            network = cls()
        network.to_empty(device="cpu")
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                # Files without the counters leave them as they are; make them defined (unused in eval).
                module.num_batches_tracked.zero_()
        load_strict(network, state, path, "inception_fid")  # CorruptWeightsError names the bad keys
        return network

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (b, 3, h, w) -> the network's input (b, 3, 299, 299) in [-1, 1]."""
        dtype = self.Conv2d_1a_3x3.conv.weight.dtype
        x = images if images.dtype == dtype else images.to(dtype)
        if x.shape[-2:] != (FID_INPUT_SIZE, FID_INPUT_SIZE):
            x = F.interpolate(x, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pool3 features of (b, 3, h, w) RGB images in [0, 1] -> (b, 2048)."""
        x = self.preprocess(images)  # (b, 3, 299, 299)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (b, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (b, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (b, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (b, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)  # ends at (b, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (b, 2048): pool3, the global average
