"""Identity losses: cosine distance between face descriptors (VGG-Face, or dlib's ResNet) of output and target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.losses.perceptual import check_image_pair
from talkinghead.models.dlib_resnet import DlibResNet
from talkinghead.models.face_chip import extract_face_chips
from talkinghead.models.vgg import VGGFace


class IdentityLoss(nn.Module):
    """``1 - cos(d(output), d(target))`` averaged over the batch, ``d`` the VGG-Face descriptor.

    ``d`` is the L2-normalised rectified fc7 activation of VGG-Face (see
    :meth:`VGGFace.descriptor`); inputs are resized to 224 x 224 inside. The loss is in
    [0, 2] in general and in [0, 1] for rectified descriptors (their cosine is >= 0). The
    target's descriptor is computed without a graph.

    Args:
        vggface: a frozen :class:`VGGFace` built with ``with_fc=True``.
    """

    def __init__(self, vggface: VGGFace) -> None:
        super().__init__()
        if not isinstance(vggface, VGGFace) or not vggface.with_fc:
            raise ValueError(
                "IdentityLoss needs VGGFace with its fully connected layers "
                "(VGGFace.from_registry(..., with_fc=True))"
            )
        self.vggface = vggface

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Identity distance of two face batches.

        Args:
            output: (b, 3, h, w) generated RGB in [-1, 1].
            target: (b, 3, h, w) ground-truth RGB in [-1, 1].

        Returns:
            Scalar fp32 loss.
        """
        check_image_pair(output, target, "IdentityLoss")
        output_descriptor = self.vggface.descriptor(self.vggface.preprocess(output))  # (b, 4096) unit
        with torch.no_grad():
            target_descriptor = self.vggface.descriptor(self.vggface.preprocess(target))
        cosine = (output_descriptor * target_descriptor).sum(dim=1)  # (b,)
        return (1.0 - cosine).mean()


class DlibIdentityLoss(nn.Module):
    """``1 - cos(d(chip(output)), d(chip(target)))``, ``d`` dlib's ResNet face descriptor (PyTorch port).

    The identity term when VGG-Face is not installed (``perceptual: auto``). Both images are cut
    into dlib's aligned 150 x 150 chip with the *target's* landmarks (the output is meant to show
    the target's pose, so one alignment serves both and the loss does not reward a face that
    moved), by the differentiable :func:`~talkinghead.models.face_chip.extract_face_chips`; small
    training images are upsampled to the chip (64 px crops hold a face of ~40 px). The target's
    descriptor is computed without a graph.

    Args:
        network: a frozen :class:`~talkinghead.models.dlib_resnet.DlibResNet`.
    """

    def __init__(self, network: DlibResNet) -> None:
        super().__init__()
        if not isinstance(network, DlibResNet):
            raise ValueError("DlibIdentityLoss needs a DlibResNet (DlibResNet.from_registry())")
        self.network = network

    def descriptor(self, images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """(b, 3, h, w) RGB in [-1, 1] and (b, 68 or 5, 2) landmarks in pixels -> (b, 128) unit descriptors."""
        chips = extract_face_chips((images.float() + 1.0) * 127.5, points.float())  # (b, 3, 150, 150) in 0..255
        return F.normalize(self.network(chips), dim=1)

    def forward(self, output: torch.Tensor, target: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Identity distance of two face batches.

        Args:
            output: (b, 3, h, w) generated RGB in [-1, 1].
            target: (b, 3, h, w) ground-truth RGB in [-1, 1].
            points: (b, 68, 2) iBUG (or (b, 5, 2) dlib) landmarks of the target, (x, y) in pixels.

        Returns:
            Scalar fp32 loss in [0, 2].
        """
        check_image_pair(output, target, "DlibIdentityLoss")
        if points.ndim != 3 or points.shape[0] != output.shape[0]:
            raise ValueError(f"DlibIdentityLoss: landmarks {tuple(points.shape)} for {output.shape[0]} images")
        output_descriptor = self.descriptor(output, points)
        with torch.no_grad():
            target_descriptor = self.descriptor(target, points)
        return (1.0 - (output_descriptor * target_descriptor).sum(dim=1)).mean()
