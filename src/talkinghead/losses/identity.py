"""Identity loss: cosine distance between VGG-Face descriptors of output and target."""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.losses.perceptual import check_image_pair
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
