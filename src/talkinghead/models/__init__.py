"""Networks, one file per paper block (and the pretrained helper networks they rely on).

Importing this package registers every built-in method (see :mod:`talkinghead.models.registry`).
"""

from talkinghead.models import lsr  # noqa: F401  (registers the 'lsr' method)
from talkinghead.models import metaportrait  # noqa: F401  (registers the 'metaportrait' method)
from talkinghead.models import fsth  # noqa: F401  (registers the 'fsth' method)
from talkinghead.models.discriminator import StyleGAN2Discriminator
from talkinghead.models.encoder import LatentEncoder
from talkinghead.models.image_generator import SPADEImageGenerator
from talkinghead.models.inference_model import InferenceModel, StateTensor
from talkinghead.models.layout_generator import LayoutGenerator
from talkinghead.models.pretrained import PretrainedModel, load_pretrained
from talkinghead.models.registry import MethodSpec, get_method, register_method, registered_methods

__all__ = [
    "InferenceModel",
    "LatentEncoder",
    "LayoutGenerator",
    "MethodSpec",
    "PretrainedModel",
    "SPADEImageGenerator",
    "StateTensor",
    "StyleGAN2Discriminator",
    "get_method",
    "load_pretrained",
    "register_method",
    "registered_methods",
]
