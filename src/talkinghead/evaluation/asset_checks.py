"""Build each registry asset's network from the installed file: the check ``weights add`` runs.

A checksum proves a file is the published one only where a checksum is published. For the
other assets, ``talkinghead weights add`` builds the network that will use the file and
loads it strictly (every key, every shape), so a wrong file is refused when it is added,
not found later as a failure on every clip of a long ``prepare`` run. The table lives at
this level because the networks using the assets live in ``models``, ``data`` and
``evaluation``.
"""

from __future__ import annotations

from collections.abc import Callable


def _vgg19() -> object:
    from talkinghead.models.vgg import VGG19Features

    return VGG19Features.from_registry("weights add vgg19")


def _vggface() -> object:
    from talkinghead.models.vgg import VGGFace

    return VGGFace.from_registry("weights add vggface")


def _alexnet() -> object:
    from talkinghead.models.alexnet import AlexNetFeatures

    return AlexNetFeatures.from_registry("weights add alexnet")


def _lpips_alex() -> object:
    from talkinghead.evaluation.metrics.lpips import LPIPSCalibration

    return LPIPSCalibration.from_registry("weights add lpips_alex")


def _inception_fid() -> object:
    from talkinghead.models.inception_fid import InceptionFID

    return InceptionFID.from_registry("weights add inception_fid")


def _arcface() -> object:
    from talkinghead.models.arcface import IResNet

    return IResNet.from_registry("weights add arcface")


def _face_parsing() -> object:
    from talkinghead.data.face_parsing_segmenter import FaceParsingSegmenter

    return FaceParsingSegmenter.from_registry()


def _fan() -> object:
    from talkinghead.data.landmarks.fan_backend import FANLandmarker

    return FANLandmarker.from_registry()


# Asset name -> a function building its network from the installed file (raises WeightsError).
ASSET_LOADERS: dict[str, Callable[[], object]] = {
    "vgg19": _vgg19,
    "vggface": _vggface,
    "alexnet": _alexnet,
    "lpips_alex": _lpips_alex,
    "inception_fid": _inception_fid,
    "arcface": _arcface,
    "face_parsing": _face_parsing,
    "fan": _fan,
}


def asset_loader(name: str) -> Callable[[], object] | None:
    """The strict-loading check of asset ``name`` (None for an asset without a network here)."""
    return ASSET_LOADERS.get(name)
