"""The LSR training objectives: LSR Eq. 2 (layout pre-training) and LSR Eq. 4 (full pipeline).

Every term has its weight in :class:`LossWeights`; a term with weight 0, or whose
perceptual network is not installed (``trainer.perceptual: auto``), is not computed.
Terms are returned unweighted for logging, the total is weighted.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from talkinghead.config.lsr import LossWeights
from talkinghead.losses import (
    DlibIdentityLoss,
    IdentityLoss,
    PerceptualLoss,
    d_logistic_loss,
    d_r1_loss,
    g_nonsaturating_loss,
    latent_l2,
    segmentation_loss,
)
from talkinghead.losses.factory import PerceptualNetworks

Terms = dict[str, torch.Tensor]

# Perceptual networks a term needs ("vggface_fc": VGGFace with its descriptor layers).
TERM_NETWORKS = {"vgg19": "vgg19", "vggface": "vggface", "identity": "vggface_fc", "layout_rgb": "vgg19"}


def needed_networks(weights: LossWeights) -> set[str]:
    """Perceptual networks the non-zero terms of ``weights`` use."""
    return {net for term, net in TERM_NETWORKS.items() if getattr(weights, term) > 0}


class LSRObjective:
    """Loss terms of one stage, with its weights and the perceptual networks that are present.

    Args:
        weights: the stage's (resolved) loss weights.
        perceptual: the loaded perceptual networks (see ``losses.factory``).
    """

    def __init__(self, weights: LossWeights, perceptual: PerceptualNetworks):
        self.weights = weights
        vgg19 = perceptual.vgg19 if perceptual.has("vgg19") else None
        self.vgg19 = PerceptualLoss(vgg19) if vgg19 is not None and weights.vgg19 > 0 else None
        self.rgb_perceptual = PerceptualLoss(vgg19) if vgg19 is not None and weights.layout_rgb > 0 else None
        face = perceptual.vggface
        self.vggface = PerceptualLoss(face) if perceptual.has("vggface") and weights.vggface > 0 else None
        self.identity = IdentityLoss(face) if perceptual.has("vggface_fc") and weights.identity > 0 else None
        if self.identity is None and perceptual.has("dlib_resnet") and weights.identity > 0:
            self.identity = DlibIdentityLoss(perceptual.dlib_resnet)  # VGGFace missing: dlib-resnet stands in

    def to(self, device: torch.device) -> LSRObjective:
        for loss in (self.vgg19, self.vggface, self.identity, self.rgb_perceptual):
            if loss is not None:
                loss.to(device)
        return self

    def layout_pretrain(
        self, layout_logits: torch.Tensor, rgb: torch.Tensor, target_image: torch.Tensor, segmentation: torch.Tensor
    ) -> tuple[torch.Tensor, Terms]:
        """LSR Eq. 2: X-ent(y^l, S_t) + lambda_R * L_R(R_t, I_t).

        L_R is the VGG19 perceptual loss; without VGG19 (``perceptual: auto``/``none``) it
        falls back to L1 so that R_t still regularises the layout.
        """
        w = self.weights
        terms: Terms = {"segmentation": segmentation_loss(layout_logits.float(), segmentation)}
        total = w.segmentation * terms["segmentation"]
        if w.layout_rgb > 0:
            if self.rgb_perceptual is not None:
                terms["layout_rgb"] = self.rgb_perceptual(rgb.float(), target_image.float())
            else:
                terms["layout_rgb_l1"] = F.l1_loss(rgb.float(), target_image.float())
            total = total + w.layout_rgb * (terms.get("layout_rgb", terms.get("layout_rgb_l1")))
        return total, terms

    def generator(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        z_layout: torch.Tensor | None,
        z_style: torch.Tensor | None,
        fake_logits: torch.Tensor | None,
        layout_logits: torch.Tensor | None = None,
        segmentation: torch.Tensor | None = None,
        target_points: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Terms]:
        """LSR Eq. 4: L_rec + lambda_adv L_adv + lambda_L2 (||z^l||^2 + ||z^s||^2).

        L_rec = w_vgg19 VGG19 + w_vggface VGGFace + w_identity identity + w_l1 L1 (§3.3).
        A non-zero ``segmentation`` weight keeps the cross-entropy on (the paper turns it
        off in this stage, §3.4). ``target_points`` (b, 68, 2): the target's iBUG landmarks in
        pixels, which the dlib-resnet identity loss aligns its face chips with.
        """
        w = self.weights
        output, target = output.float(), target.float()
        terms: Terms = {}
        weighted: list[torch.Tensor] = []

        def add(name: str, weight: float, value: torch.Tensor) -> None:
            terms[name] = value
            weighted.append(weight * value)

        if w.l1 > 0:
            add("l1", w.l1, F.l1_loss(output, target))
        if self.vgg19 is not None:
            add("vgg19", w.vgg19, self.vgg19(output, target))
        if self.vggface is not None:
            add("vggface", w.vggface, self.vggface(output, target))
        if isinstance(self.identity, DlibIdentityLoss):
            if target_points is None:
                raise ValueError("the dlib-resnet identity loss needs the batch's target_points (iBUG-68 landmarks)")
            add("identity", w.identity, self.identity(output, target, target_points.float()))
        elif self.identity is not None:
            add("identity", w.identity, self.identity(output, target))
        if w.gan > 0 and fake_logits is not None:
            add("gan", w.gan, g_nonsaturating_loss(fake_logits.float()))
        latents = [z for z in (z_layout, z_style) if z is not None]  # an ablation may run one encoder
        if w.latent_l2 > 0 and latents:
            add("latent_l2", w.latent_l2, sum(latent_l2(z) for z in latents))
        if w.segmentation > 0 and layout_logits is not None and segmentation is not None:
            add("segmentation", w.segmentation, segmentation_loss(layout_logits.float(), segmentation))
        if not weighted:
            raise ValueError("every loss term of this stage has weight 0 or no network; nothing would train")
        return torch.stack(weighted).sum(), terms

    @staticmethod
    def discriminator(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, Terms]:
        """Non-saturating logistic loss of D."""
        loss = d_logistic_loss(real_logits.float(), fake_logits.float())
        return loss, {
            "d_logistic": loss,
            "real_score": real_logits.detach().float().mean(),
            "fake_score": fake_logits.detach().float().mean(),
        }

    @staticmethod
    def r1(real_logits: torch.Tensor, real_inputs: torch.Tensor, gamma: float, every: int) -> tuple[torch.Tensor, Terms]:
        """Lazy R1 (StyleGAN2): gamma / 2 * E||grad D(x)||^2, scaled by the interval.

        ``0 * logits`` keeps every D parameter in the graph, as DDP requires.
        """
        penalty = d_r1_loss(real_logits, real_inputs)
        loss = gamma / 2 * penalty * every + 0 * real_logits.float().mean()
        return loss, {"r1": penalty}

