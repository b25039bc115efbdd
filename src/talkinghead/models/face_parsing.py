"""BiSeNet face parser (Yu et al. 2018) in the layout of zllrunning/face-parsing.PyTorch.

LSR (appendix A.1) makes its oracle segmentations with this network trained on
CelebAMask-HQ (19 classes, see :mod:`talkinghead.data.segmentation_classes`). The module
names reproduce the released ``79999_iter.pth`` (``cp.resnet.*``, ``cp.arm16``, ``cp.arm32``,
``cp.conv_head32``, ``cp.conv_head16``, ``cp.conv_avg``, ``ffm``, ``conv_out``, ``conv_out16``,
``conv_out32``) so that file loads with ``strict=True``.

That release has no spatial path: the ResNet-18 stride-8 features stand in for it. Nothing
here downloads ImageNet weights; the released checkpoint holds the whole network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Module):
    """Convolution (no bias), batch norm, ReLU: ``conv.weight`` and ``bn.*`` in the checkpoint."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in, h, w) -> (b, out, h / stride, w / stride)."""
        return F.relu(self.bn(self.conv(x)))


class ResidualBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions) with a 1x1 projection shortcut when needed."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if in_channels != out_channels or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in, h, w) -> (b, out, h / stride, w / stride)."""
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


class ResNet18Features(nn.Module):
    """ResNet-18 trunk without pooling/classifier; returns the stride 8, 16 and 32 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(64, 64, stride=1)
        self.layer2 = self._stage(64, 128, stride=2)
        self.layer3 = self._stage(128, 256, stride=2)
        self.layer4 = self._stage(256, 512, stride=2)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            ResidualBlock(in_channels, out_channels, stride=stride),
            ResidualBlock(out_channels, out_channels, stride=1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(b, 3, H, W) -> (b, 128, H/8, W/8), (b, 256, H/16, W/16), (b, 512, H/32, W/32)."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # (b, 64, H/4, W/4)
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


class AttentionRefinementModule(nn.Module):
    """BiSeNet ARM: a 3x3 ConvBNReLU whose output is re-weighted by global channel attention."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, kernel_size=3)
        self.conv_atten = nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in, h, w) -> (b, out, h, w)."""
        feat = self.conv(x)
        pooled = F.adaptive_avg_pool2d(feat, 1)  # (b, out, 1, 1)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(pooled)))
        return feat * attention


class ContextPath(nn.Module):
    """BiSeNet context path on ResNet-18 with ARMs on the stride-16 and stride-32 features."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet18Features()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, kernel_size=3)
        self.conv_head16 = ConvBNReLU(128, 128, kernel_size=3)
        self.conv_avg = ConvBNReLU(512, 128, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(b, 3, H, W) -> stride-8 trunk features (b, 128, H/8, W/8), context at stride 8
        (b, 128, H/8, W/8) and context at stride 16 (b, 128, H/16, W/16)."""
        feat8, feat16, feat32 = self.resnet(x)
        global_context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))  # (b, 128, 1, 1)
        refined32 = self.arm32(feat32) + global_context  # (b, 128, H/32, W/32), broadcast add
        context16 = self.conv_head32(F.interpolate(refined32, size=feat16.shape[2:], mode="nearest"))
        refined16 = self.arm16(feat16) + context16  # (b, 128, H/16, W/16)
        context8 = self.conv_head16(F.interpolate(refined16, size=feat8.shape[2:], mode="nearest"))
        return feat8, context8, context16


class FeatureFusionModule(nn.Module):
    """BiSeNet FFM: concatenate spatial and context features, fuse, add channel attention."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(in_channels, out_channels, kernel_size=1)
        self.conv1 = nn.Conv2d(out_channels, out_channels // 4, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels // 4, out_channels, kernel_size=1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(b, c1, h, w) and (b, c2, h, w) with c1 + c2 = in_channels -> (b, out, h, w)."""
        feat = self.convblk(torch.cat((spatial, context), dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat + feat * attention


class SegmentationHead(nn.Module):
    """A 3x3 ConvBNReLU then a 1x1 classifier (``BiSeNetOutput`` in the release)."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, kernel_size=3)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in, h, w) -> (b, num_classes, h, w) logits."""
        return self.conv_out(self.conv(x))


class BiSeNetFaceParser(nn.Module):
    """Face parsing network: per-pixel logits over the CelebAMask-HQ classes.

    Input is RGB scaled to [0, 1] then normalised with the ImageNet mean and std; the
    released weights were trained at 512x512. Sides must be divisible by 32.

    Args:
        num_classes: output classes (19 for the released CelebAMask-HQ weights).
    """

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = SegmentationHead(256, 256, num_classes)
        # Auxiliary heads used only as extra supervision in training; kept so that the
        # released file loads strictly and training can use them.
        self.conv_out16 = SegmentationHead(128, 64, num_classes)
        self.conv_out32 = SegmentationHead(128, 64, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=1)

    def forward(
        self, x: torch.Tensor, return_aux: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits at the input resolution.

        Args:
            x: (b, 3, H, W) normalised RGB, H and W divisible by 32.
            return_aux: also return the two auxiliary heads' logits.

        Returns:
            (b, num_classes, H, W) logits, or ``(main, aux16, aux32)`` with ``return_aux``.
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(
                f"BiSeNetFaceParser expects (b, 3, H, W) with H and W divisible by 32, got {tuple(x.shape)}"
            )
        size = x.shape[2:]
        feat8, context8, context16 = self.cp(x)
        fused = self.ffm(feat8, context8)  # (b, 256, H/8, W/8)
        logits = F.interpolate(self.conv_out(fused), size=size, mode="bilinear", align_corners=True)
        if not return_aux:
            return logits
        aux16 = F.interpolate(self.conv_out16(context8), size=size, mode="bilinear", align_corners=True)
        aux32 = F.interpolate(self.conv_out32(context16), size=size, mode="bilinear", align_corners=True)
        return logits, aux16, aux32
