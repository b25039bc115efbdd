"""MetaPortrait's training objective (MetaPortrait Eq. 3-4) as one module holding the weights and the frozen loss networks.

    L = L^VGG_w + l_r L^VGG_r + l_id L_id + l_eye L_eye + l_mouth L_mouth + l_adv L_adv (+ l_fm L_FM)

* perceptual terms: with VGG19 installed, the mean over 4 image scales of the VGG19
  perceptual loss (the official loss: 5 VGG layers x 4 scales); without it and
  ``perceptual: auto``, an image-pyramid L1 over 4 scales (:func:`pyramid_l1`);
* L_id = 1 - cos(E_id(I~_y), z_id) (MetaPortrait Eq. 3), E_id dlib's face ResNet on the face chip of
  the crop's fixed alignment points, z_id the same descriptor of the source frames;
* L_eye, L_mouth: L1 inside boxes around the driving frame's eye and mouth landmarks
  (skipped for batches without landmark points, e.g. subject fine-tuning);
* L_adv: LSGAN on every scale of the multi-scale patch discriminator, with feature matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.metaportrait import MetaPortraitLossWeights, MetaPortraitModelConfig
from talkinghead.losses.face_regions import eye_mask, masked_l1, mouth_mask
from talkinghead.losses.factory import PerceptualNetworks
from talkinghead.losses.identity import DlibIdentityLoss
from talkinghead.losses.lsgan import feature_matching_loss, lsgan_d_loss, lsgan_g_loss
from talkinghead.losses.perceptual import PerceptualLoss
from talkinghead.losses.pyramid import pyramid_l1
from talkinghead.models.metaportrait import chip_points

NUM_PERCEPTUAL_SCALES = 4  # official: VGG features of 4 image scales


class MetaPortraitObjective(nn.Module):
    """The terms of MetaPortrait Eq. 4 with their weights.

    Args:
        weights: the stage's loss weights.
        model: the architecture config (alignment points of the identity chip).
        perceptual: the loaded perceptual networks (VGG19 when installed).
        id_network: dlib's face ResNet, or None when no term needs it.
    """

    def __init__(self, weights: MetaPortraitLossWeights, model: MetaPortraitModelConfig,
                 perceptual: PerceptualNetworks, id_network: nn.Module | None):
        super().__init__()
        self.weights = weights
        self.model = model
        self.vgg = PerceptualLoss(perceptual.vgg19) if perceptual.vgg19 is not None else None
        self.id_loss = DlibIdentityLoss(id_network) if id_network is not None else None
        if weights.identity > 0 and id_network is None:
            raise ValueError("the identity loss needs dlib's face ResNet (DlibResNet.from_registry())")

    def perceptual(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """VGG19 over 4 image scales when installed, else the image-pyramid L1; scalar fp32."""
        if self.vgg is None:
            return pyramid_l1(output, target, NUM_PERCEPTUAL_SCALES)
        loss = output.new_zeros((), dtype=torch.float32)
        for scale in range(NUM_PERCEPTUAL_SCALES):
            if scale:
                output, target = F.avg_pool2d(output, 2), F.avg_pool2d(target, 2)
            loss = loss + self.vgg(output, target)
        return loss / NUM_PERCEPTUAL_SCALES

    def identity(self, output: torch.Tensor, z_id: torch.Tensor) -> torch.Tensor:
        """L_id = 1 - cos(E_id(I~_y), z_id) (MetaPortrait Eq. 3), mean over the batch."""
        points = chip_points(self.model, output.shape[0], output.shape[-1], output.device)
        descriptor = self.id_loss.descriptor(output, points)  # unit length, as z_id
        return (1.0 - (descriptor * z_id.float()).sum(dim=1)).mean()

    def warp_terms(self, warped: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """L^VGG_w between the warped source and the driving frame."""
        return {"warp_perceptual": self.perceptual(warped, target)} if self.weights.warp_perceptual > 0 else {}

    def generator(self, warped: torch.Tensor, output: torch.Tensor | None, target: torch.Tensor,
                  z_id: torch.Tensor | None, points: torch.Tensor | None,
                  fake: list | None, real: list | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted generator loss and its unweighted terms.

        Args:
            warped: (b, 3, s, s) I~_s.
            output: (b, 3, s, s) I~_y, or None (warp pre-training).
            target: (b, 3, s, s) driving frame I_d.
            z_id: (b, id_dim) identity code of the source (needed when the ID term is on).
            points: (b, 68, 2) the driving frame's iBUG landmarks in pixels, or None.
            fake: D's multi-scale output on I~_y (None: no adversarial terms).
            real: D's multi-scale output on I_d (for feature matching).
        """
        w = self.weights
        terms = self.warp_terms(warped, target)
        if output is not None:
            if w.perceptual > 0:
                terms["perceptual"] = self.perceptual(output, target)
            if w.identity > 0 and z_id is not None:
                terms["identity"] = self.identity(output, z_id)
            if points is not None and (w.eye > 0 or w.mouth > 0):
                size = output.shape[-1]
                if w.eye > 0:
                    terms["eye"] = masked_l1(output, target, eye_mask(points, size))
                if w.mouth > 0:
                    terms["mouth"] = masked_l1(output, target, mouth_mask(points, size))
            if fake is not None:
                if w.gan > 0:
                    terms["gan"] = lsgan_g_loss(fake)
                if w.feature_matching > 0 and real is not None:
                    terms["feature_matching"] = feature_matching_loss(real, fake)
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, terms

    def discriminator(self, real: list, fake: list) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """LSGAN discriminator loss (times lambda_adv) on every scale."""
        loss = lsgan_d_loss(real, fake)
        return self.weights.gan * loss, {"d_lsgan": loss}
