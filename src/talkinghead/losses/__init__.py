"""Losses: small functions and frozen-network modules, one concept per file."""

from talkinghead.losses.adversarial import d_logistic_loss, d_r1_loss, g_nonsaturating_loss
from talkinghead.losses.factory import PerceptualNetworks, build_perceptual_networks
from talkinghead.losses.identity import DlibIdentityLoss, IdentityLoss
from talkinghead.losses.latent import latent_l2
from talkinghead.losses.perceptual import PerceptualLoss
from talkinghead.losses.segmentation import segmentation_loss

__all__ = [
    "DlibIdentityLoss",
    "IdentityLoss",
    "PerceptualLoss",
    "PerceptualNetworks",
    "build_perceptual_networks",
    "d_logistic_loss",
    "d_r1_loss",
    "g_nonsaturating_loss",
    "latent_l2",
    "segmentation_loss",
]
