"""build_perceptual_networks: the required / auto / none modes with missing, present and corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkinghead.losses import build_perceptual_networks
from talkinghead.models.vgg import VGG19Features, VGGFace
from talkinghead.weights import CorruptWeightsError, MissingWeightsError, asset_path, get_asset

ALL = {"vgg19", "vggface", "vggface_fc"}


def test_none_loads_nothing_even_when_installed(install_fake):
    install_fake("vgg19")
    result = build_perceptual_networks(ALL, "none")
    assert result.vgg19 is None and result.vggface is None
    assert result.loaded == [] and result.missing == [] and result.networks == {}
    assert sorted(result.unavailable) == sorted(ALL)
    assert "none" in result.message


def test_required_lists_every_missing_file_and_the_ways_forward():
    with pytest.raises(MissingWeightsError) as info:
        build_perceptual_networks(ALL, "required")
    message = str(info.value)
    for name in ("vgg19", "vggface"):
        assert get_asset(name).filename in message and str(asset_path(name)) in message
        assert f"talkinghead weights add {name} FILE" in message
        assert f"talkinghead weights download {name}" in message
    assert "trainer.perceptual=auto" in message and "trainer.perceptual=none" in message


def test_required_with_everything_installed(install_fake):
    install_fake("vgg19")
    install_fake("vggface")
    result = build_perceptual_networks(ALL, "required")
    assert isinstance(result.vgg19, VGG19Features) and isinstance(result.vggface, VGGFace)
    assert result.vggface.with_fc and result.missing == [] and sorted(result.loaded) == sorted(ALL)
    assert result.networks == {"vgg19": result.vgg19, "vggface": result.vggface, "vggface_fc": result.vggface}
    assert float(result.vgg19.features[0].bias[0]) == pytest.approx(0.01)
    assert not result.vgg19.training and not any(p.requires_grad for p in result.vggface.parameters())


def test_conv_only_vggface_when_the_identity_term_is_off(install_fake):
    install_fake("vggface")
    result = build_perceptual_networks({"vggface"}, "required")
    assert result.vggface is not None and not result.vggface.with_fc and result.vgg19 is None


def test_auto_loads_what_is_installed_and_explains_the_rest(install_fake):
    install_fake("vgg19")
    result = build_perceptual_networks(ALL, "auto", option="perceptual")
    assert result.vgg19 is not None and result.vggface is None
    assert result.loaded == ["vgg19"] and sorted(result.missing) == ["vggface", "vggface_fc"]
    assert result.has("vgg19") and not result.has("vggface_fc")
    assert result.networks == {"vgg19": result.vgg19}
    assert "vgg_face_dag.pth" in result.message and "talkinghead weights add vggface FILE" in result.message
    assert "identity loss" in result.message and "perceptual=auto" in result.message


def test_auto_never_skips_a_corrupt_file(install_fake):
    install_fake("vgg19")
    path = asset_path("vggface")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CorruptWeightsError) as info:
        build_perceptual_networks(ALL, "auto")
    assert str(path) in str(info.value)


def test_auto_rejects_a_file_without_the_fc_layers_when_they_are_needed(install_fake):
    with torch.device("meta"):
        conv_keys = VGGFace(with_fc=False).state_dict()
    state = {k: torch.zeros(()).expand(v.shape) for k, v in conv_keys.items()}
    path = install_fake("vggface", state)
    assert build_perceptual_networks({"vggface"}, "auto").vggface is not None
    with pytest.raises(CorruptWeightsError) as info:
        build_perceptual_networks({"vggface", "vggface_fc"}, "auto")
    assert str(path) in str(info.value) and "fc6.weight" in str(info.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="lpips"):
        build_perceptual_networks({"lpips"}, "auto")
    with pytest.raises(ValueError, match="'required', 'auto' or 'none'"):
        build_perceptual_networks({"vgg19"}, "sometimes")
    assert build_perceptual_networks(set(), "required").loaded == []
