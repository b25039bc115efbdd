"""VGG19 / VGG-Face layouts, strict registry loading and the frozen-network behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from talkinghead.models.vgg import VGG19Features, VGGFace
from talkinghead.weights import CorruptWeightsError, MissingWeightsError, asset_path

# torchvision's vgg19 'features' indices of the 16 convolutions.
VGG19_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
# Shapes of the official files' tensors that the tests do not build for real (too large).
VGG19_CLASSIFIER_SHAPES = {
    "classifier.0.weight": (4096, 25088),
    "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096),
    "classifier.3.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}
VGGFACE_FC_SHAPES = {
    "fc6.weight": (4096, 25088),
    "fc6.bias": (4096,),
    "fc7.weight": (4096, 4096),
    "fc7.bias": (4096,),
    "fc8.weight": (2622, 4096),
    "fc8.bias": (2622,),
}


def placeholders(shapes: dict[str, tuple[int, ...]], value: float = 0.01) -> dict[str, torch.Tensor]:
    """Tensors of the given shapes that cost a few bytes on disk (one element, stride 0)."""
    return {key: torch.full((), value).expand(shape) for key, shape in shapes.items()}


def install(name: str, source: Path) -> Path:
    """Put ``source`` where the registry looks for asset ``name`` (a symlink: no copy)."""
    target = asset_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
    return target


@pytest.fixture(scope="module")
def vgg19_state() -> dict[str, torch.Tensor]:
    """Random VGG19 conv weights with the real shapes (80 MB), plus classifier placeholders."""
    torch.manual_seed(0)
    return {**VGG19Features().state_dict(), **placeholders(VGG19_CLASSIFIER_SHAPES)}


@pytest.fixture(scope="module")
def vgg19_file(vgg19_state, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vgg19") / "vgg19-dcbb9e9d.pth"
    torch.save(vgg19_state, path)
    return path


@pytest.fixture(scope="module")
def vggface_conv_state() -> dict[str, torch.Tensor]:
    """Random VGG-Face conv weights with the real shapes (59 MB)."""
    torch.manual_seed(1)
    return VGGFace(with_fc=False).state_dict()


@pytest.fixture(scope="module")
def vggface_file(vggface_conv_state, tmp_path_factory) -> Path:
    """A file with the official key set: real conv weights, constant fc tensors of real shapes."""
    path = tmp_path_factory.mktemp("vggface") / "vgg_face_dag.pth"
    torch.save({**vggface_conv_state, **placeholders(VGGFACE_FC_SHAPES)}, path)
    return path


def save_corrupt(tmp_path: Path, state: dict[str, torch.Tensor], name: str) -> Path:
    """Save ``state`` and install it as asset ``name``; returns the installed path."""
    source = tmp_path / f"{name}_source.pth"
    torch.save(state, source)
    return install(name, source)


def test_vgg19_layout_matches_torchvision():
    network = VGG19Features()
    expected = {f"features.{i}.{p}" for i in VGG19_CONV_INDICES for p in ("weight", "bias")}
    assert set(network.state_dict()) == expected
    assert sum(p.numel() for p in network.parameters()) == 20_024_384  # torchvision vgg19 'features'
    assert len(network.features) == 37
    names = network.layer_order
    assert [names.index(n) for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")] == [1, 6, 11, 20, 29]
    assert network.features[34].weight.shape == (512, 512, 3, 3) and names[34] == "conv5_4"


def test_vggface_layout_matches_the_dag_conversion():
    with torch.device("meta"):  # shapes only: no 580 MB allocation
        conv_only, full = VGGFace(with_fc=False), VGGFace(with_fc=True)
    convs = [f"conv{block}_{i}" for block, n in enumerate((2, 2, 3, 3, 3), start=1) for i in range(1, n + 1)]
    conv_keys = {f"{conv}.{p}" for conv in convs for p in ("weight", "bias")}
    assert set(conv_only.state_dict()) == conv_keys
    assert set(full.state_dict()) == conv_keys | set(VGGFACE_FC_SHAPES)
    assert {k: tuple(v.shape) for k, v in full.state_dict().items() if k.startswith("fc")} == VGGFACE_FC_SHAPES
    assert sum(p.numel() for p in full.parameters()) == 145_002_878  # VGG-16 with 2622 classes


def test_vgg19_loads_the_official_layout_strictly(vgg19_file, vgg19_state):
    install("vgg19", vgg19_file)
    network = VGG19Features.from_registry()
    for key, value in network.state_dict().items():
        assert torch.equal(value, vgg19_state[key]), key
    assert not network.training
    assert not any(p.requires_grad for p in network.parameters())


def test_frozen_networks_stay_in_eval_mode():
    for network in (VGG19Features(), VGGFace()):
        network.train()
        assert not network.training and not any(m.training for m in network.modules())
        wrapper = torch.nn.Sequential(network).train()
        assert wrapper.training and not network.training
        assert not any(p.requires_grad for p in network.parameters())


def test_forward_returns_requested_layers_and_stops_after_the_deepest():
    network = VGG19Features()
    called = []
    for index, layer in enumerate(network.features):
        layer.register_forward_hook(lambda module, args, out, index=index: called.append(index))
    x = network.preprocess(torch.rand(2, 3, 32, 32) * 2 - 1)
    out = network(x, ["relu2_1", "relu1_1"])
    assert set(out) == {"relu1_1", "relu2_1"}
    assert out["relu1_1"].shape == (2, 64, 32, 32) and out["relu2_1"].shape == (2, 128, 16, 16)
    assert max(called) == 6  # relu2_1 is features.6
    assert (out["relu2_1"] >= 0).all()
    deep = network(x, ["relu5_1"])["relu5_1"]
    assert deep.shape == (2, 512, 2, 2)
    with pytest.raises(ValueError, match="relu9_9"):
        network(x, ["relu9_9"])


def test_vggface_forward_and_descriptor_shapes():
    torch.manual_seed(0)
    network = VGGFace(with_fc=True)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    x = network.preprocess(images)
    out = network(x, ["relu1_1", "relu5_1"])
    assert out["relu1_1"].shape == (2, 64, 64, 64) and out["relu5_1"].shape == (2, 512, 4, 4)
    with torch.no_grad():
        descriptor = network.descriptor(x[:1])  # resized to 224 inside
    assert descriptor.shape == (1, 4096) and descriptor.dtype == torch.float32
    torch.testing.assert_close(descriptor.norm(dim=1), torch.ones(1))
    with pytest.raises(RuntimeError, match="with_fc=True"):
        VGGFace(with_fc=False).descriptor(x)


def test_preprocess_conventions():
    white, black = torch.ones(1, 3, 2, 2), -torch.ones(1, 3, 2, 2)
    # VGG19: [0, 1] then ImageNet mean/std.
    expected = -torch.tensor([0.485, 0.456, 0.406]) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(VGG19Features().preprocess(black)[0, :, 0, 0], expected)
    # VGG-Face: RGB 0..255 minus the conversion's mean.
    expected = 255.0 - torch.tensor([129.186, 104.762, 93.594])
    torch.testing.assert_close(VGGFace().preprocess(white)[0, :, 0, 0], expected, atol=1e-3, rtol=0)


def test_vggface_conv_only_ignores_the_fc_tensors(vggface_file, vggface_conv_state):
    install("vggface", vggface_file)
    network = VGGFace.from_registry()
    assert not network.with_fc and not hasattr(network, "fc6")
    for key, value in network.state_dict().items():
        assert torch.equal(value, vggface_conv_state[key]), key


def test_vggface_with_fc_checks_and_loads_the_fc_tensors(vggface_file, vggface_conv_state, tmp_path):
    install("vggface", vggface_file)
    network = VGGFace.from_registry(with_fc=True)
    assert network.fc6.weight.shape == (4096, 25088) and float(network.fc8.bias[0]) == pytest.approx(0.01)
    # A conv-only file serves the perceptual loss but not the identity descriptor.
    asset_path("vggface").unlink()
    path = save_corrupt(tmp_path, vggface_conv_state, "vggface")
    VGGFace.from_registry(with_fc=False)
    with pytest.raises(CorruptWeightsError) as info:
        VGGFace.from_registry(with_fc=True)
    assert str(path) in str(info.value) and "fc6.weight" in str(info.value)


def cheap_state(cls: type, **kwargs) -> dict[str, torch.Tensor]:
    """The key set of network ``cls(**kwargs)`` with cheap tensors of the right shapes."""
    with torch.device("meta"):
        network = cls(**kwargs)
    return placeholders({k: tuple(v.shape) for k, v in network.state_dict().items()})


@pytest.mark.parametrize("problem", ["wrong_shape", "missing", "unexpected"])
def test_vgg19_wrong_keys_name_the_file(problem, tmp_path):
    state = {**cheap_state(VGG19Features), **placeholders(VGG19_CLASSIFIER_SHAPES)}
    if problem == "wrong_shape":
        state["features.10.weight"] = torch.zeros(()).expand(256, 128, 1, 1)
        key = "features.10.weight"
    elif problem == "missing":
        del state["features.34.bias"]
        key = "features.34.bias"
    else:
        state["features.37.weight"] = torch.zeros(1)
        key = "features.37.weight"
    path = save_corrupt(tmp_path, state, "vgg19")
    with pytest.raises(CorruptWeightsError) as info:
        VGG19Features.from_registry()
    assert str(path) in str(info.value) and key in str(info.value)
    assert "talkinghead weights add vgg19" in str(info.value)


def test_vggface_conv_wrong_shape_names_the_file(tmp_path):
    state = cheap_state(VGGFace, with_fc=True)
    state["conv3_2.weight"] = torch.zeros(()).expand(256, 256, 1, 1)
    path = save_corrupt(tmp_path, state, "vggface")
    with pytest.raises(CorruptWeightsError) as info:
        VGGFace.from_registry()
    assert str(path) in str(info.value) and "conv3_2.weight" in str(info.value)


class _Payload:
    """Unpickling this would create ``marker``: torch.load(weights_only=True) must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("name, load", [("vgg19", VGG19Features.from_registry), ("vggface", VGGFace.from_registry)])
def test_pickled_code_is_refused(name, load, tmp_path):
    marker = tmp_path / "code_ran"
    path = save_corrupt(tmp_path, {"features.0.bias": torch.zeros(64), "payload": _Payload(marker)}, name)
    with pytest.raises(CorruptWeightsError) as info:
        load()
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("name, load", [("vgg19", VGG19Features.from_registry), ("vggface", VGGFace.from_registry)])
def test_missing_file_says_how_to_install(name, load):
    with pytest.raises(MissingWeightsError) as info:
        load()
    assert f"talkinghead weights add {name}" in str(info.value)


@pytest.mark.slow
def test_vggface_full_file_with_real_fc_shapes(tmp_path):
    """The whole 580 MB key set with random weights: the identity descriptor of a loaded net."""
    torch.manual_seed(2)
    reference = VGGFace(with_fc=True)
    path = save_corrupt(tmp_path, reference.state_dict(), "vggface")
    assert path.stat().st_size > 500e6
    network = VGGFace.from_registry(with_fc=True)
    path.resolve().unlink()  # do not leave 580 MB in pytest's kept temporary folders
    images = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        expected = reference.descriptor(reference.preprocess(images))
        torch.testing.assert_close(network.descriptor(network.preprocess(images)), expected)
        assert network.logits(network.preprocess(images)).shape == (2, 2622)
