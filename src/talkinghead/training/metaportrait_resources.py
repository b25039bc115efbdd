"""The frozen networks a MetaPortrait run or fine-tuning needs: VGG19 (when installed) and dlib's face ResNet."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from talkinghead.config.metaportrait import MetaPortraitStageConfig
from talkinghead.losses.factory import PerceptualNetworks, build_perceptual_networks
from talkinghead.models.metaportrait import identity_network


@dataclass
class MetaPortraitResources:
    """The frozen networks a run needs, built once.

    Attributes:
        perceptual: VGG19 when installed (else the image-pyramid L1 stands in).
        id_network: dlib's face ResNet (z_id and L_id), or None when no stage refines.
        message: what was loaded, logged at the start of the run.
    """

    perceptual: PerceptualNetworks
    id_network: nn.Module | None
    message: str


def needs_identity(stage: MetaPortraitStageConfig) -> bool:
    """The full and meta stages refine with z_id (and L_id), so they need dlib's face ResNet."""
    return stage.name in ("full", "meta")


def build_resources(perceptual_mode: str, with_identity: bool, *, option: str = "trainer.perceptual") -> MetaPortraitResources:
    """VGG19 (by ``perceptual_mode``) and, ``with_identity``, dlib's face ResNet (required: it makes z_id)."""
    perceptual = build_perceptual_networks({"vgg19"}, perceptual_mode, option=option)
    id_net = identity_network("cpu") if with_identity else None
    message = perceptual.message
    if perceptual.vgg19 is None and perceptual_mode != "required":
        message += " MetaPortrait's perceptual terms use an image-pyramid L1 over 4 scales instead of VGG19."
    if id_net is not None:
        message += " z_id and L_id: dlib's face ResNet (dlib-resnet)."
    return MetaPortraitResources(perceptual, id_net, message.strip())
