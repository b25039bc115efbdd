"""Networks, one file per paper block (and the pretrained helper networks they rely on).

Importing this package registers every built-in method (see :mod:`talkinghead.models.registry`).
It exports the method contract only; a method's blocks are imported from their own modules.
"""

from talkinghead.models import lsr  # noqa: F401  (registers the 'lsr' method)
from talkinghead.models import metaportrait  # noqa: F401  (registers the 'metaportrait' method)
from talkinghead.models import fsth  # noqa: F401  (registers the 'fsth' method)
from talkinghead.models.inference_model import InferenceModel, StateTensor
from talkinghead.models.pretrained import PretrainedModel, load_pretrained
from talkinghead.models.registry import MethodSpec, get_method, register_method, registered_methods

__all__ = [
    "InferenceModel",
    "MethodSpec",
    "PretrainedModel",
    "StateTensor",
    "get_method",
    "load_pretrained",
    "register_method",
    "registered_methods",
]
