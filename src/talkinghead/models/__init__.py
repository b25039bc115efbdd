"""Networks, one file per paper block (and the pretrained helper networks they rely on)."""

from talkinghead.models.discriminator import StyleGAN2Discriminator
from talkinghead.models.encoder import LatentEncoder
from talkinghead.models.image_generator import SPADEImageGenerator
from talkinghead.models.layout_generator import LayoutGenerator

__all__ = ["LatentEncoder", "LayoutGenerator", "SPADEImageGenerator", "StyleGAN2Discriminator"]
