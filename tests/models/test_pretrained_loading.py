"""Every network loaded through the weights registry fails clearly on a missing or corrupt file."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.data.face_parsing_segmenter import FaceParsingSegmenter
from talkinghead.data.landmarks.fan_backend import FANLandmarker
from talkinghead.evaluation.metrics.lpips import LPIPSCalibration
from talkinghead.models.alexnet import AlexNetFeatures
from talkinghead.models.inception_fid import InceptionFID
from talkinghead.weights import CorruptWeightsError, MissingWeightsError, asset_path, get_asset

LOADERS = [
    ("fan", FANLandmarker.from_registry),
    ("face_parsing", FaceParsingSegmenter.from_registry),
    ("alexnet", AlexNetFeatures.from_registry),
    ("lpips_alex", LPIPSCalibration.from_registry),
    ("inception_fid", InceptionFID.from_registry),
]


@pytest.mark.parametrize("name, load", LOADERS, ids=[n for n, _ in LOADERS])
def test_missing_file_says_how_to_install(name, load):
    with pytest.raises(MissingWeightsError) as info:
        load()
    assert get_asset(name).filename in str(info.value)
    assert f"talkinghead weights add {name}" in str(info.value)


@pytest.mark.parametrize("name, load", LOADERS, ids=[n for n, _ in LOADERS])
def test_corrupt_file_names_the_path(name, load):
    path = asset_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CorruptWeightsError) as info:
        load()
    assert str(path) in str(info.value)
