"""dlib's DNN file format: round trip of every layer kind, the real face-recognition file, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.weights import MissingWeightsError, require
from talkinghead.weights.dlib_dnn import DlibFormatError, DlibLayer, DlibNetwork, read_dlib_network
from talkinghead.weights.dlib_dnn_writer import write_dlib_network
from talkinghead.weights.registry import add, installed_path, package_path


def _small_network(rng: np.random.Generator) -> DlibNetwork:
    """A network with every layer kind the reader knows, input to output."""

    def conv(out_c: int, in_c: int, k: int, stride: int, bias: bool) -> DlibLayer:
        pad = 0 if stride != 1 else k // 2
        return DlibLayer("con", params={
            "weight": rng.standard_normal((out_c, in_c, k, k)).astype(np.float32),
            "bias": rng.standard_normal(out_c).astype(np.float32) if bias else None,
            "stride_y": stride, "stride_x": stride, "padding_y": pad, "padding_x": pad,
        })

    def affine(c: int) -> DlibLayer:
        return DlibLayer("affine", params={"gamma": rng.standard_normal(c).astype(np.float32),
                                           "beta": rng.standard_normal(c).astype(np.float32), "mode": 0})

    pool = {"stride_y": 2, "stride_x": 2, "padding_y": 0, "padding_x": 0}
    layers = [
        conv(4, 3, 3, 2, bias=True), affine(4), DlibLayer("relu"),
        DlibLayer("max_pool", params={"nr": 3, "nc": 3, **pool}),
        DlibLayer("tag_or_skip"),
        conv(4, 4, 3, 1, bias=False), affine(4),
        DlibLayer("add_prev"), DlibLayer("relu"),
        DlibLayer("avg_pool", params={"nr": 2, "nc": 2, **pool}),
        DlibLayer("avg_pool", params={"nr": 0, "nc": 0, "stride_y": 1, "stride_x": 1, "padding_y": 0, "padding_x": 0}),
        DlibLayer("fc", params={"weight": rng.standard_normal((4, 6)).astype(np.float32),
                                "bias": rng.standard_normal(6).astype(np.float32)}),
        DlibLayer("fc", params={"weight": rng.standard_normal((6, 5)).astype(np.float32), "bias": None}),
    ]
    input_layer = DlibLayer("input_rgb_image_sized", params={"mean_rgb": [122.782, 117.001, 104.298], "nr": 20, "nc": 20})
    loss = DlibLayer("loss_metric", params={"margin": 0.04, "distance_threshold": 0.6})
    return DlibNetwork(input_layer, layers, loss)


def test_round_trip_of_every_layer_kind(tmp_path):
    network = _small_network(np.random.default_rng(0))
    path = tmp_path / "small.dat"
    path.write_bytes(write_dlib_network(network))
    back = read_dlib_network(path)

    assert back.kinds() == network.kinds()
    assert back.input.params["nr"] == 20 and back.input.params["nc"] == 20
    np.testing.assert_allclose(back.input.params["mean_rgb"], network.input.params["mean_rgb"], rtol=1e-12)
    assert back.loss.params["margin"] == pytest.approx(0.04) and back.loss.params["distance_threshold"] == pytest.approx(0.6)
    for written, read in zip(network.layers, back.layers):
        for key, value in written.params.items():
            if value is None:
                assert read.params[key] is None, key
            elif isinstance(value, np.ndarray):
                np.testing.assert_array_equal(read.params[key], value)  # float32 bytes, exactly
            else:
                assert read.params[key] == value, (written.kind, key)
    # Writing what was read gives the same bytes.
    assert write_dlib_network(back) == path.read_bytes()


def test_integer_float_and_string_encoding_follow_dlib_serialize():
    from talkinghead.weights.dlib_dnn import _Reader
    from talkinghead.weights.dlib_dnn_writer import _Writer

    w = _Writer()
    for value in (0, 1, 300, -5, 2**40):
        w.int(value)
    # dlib: one control byte (bit 7 the sign, low nibble the byte count), then little-endian magnitude.
    assert w.out.getvalue() == b"\x01\x00" + b"\x01\x01" + b"\x02\x2c\x01" + b"\x81\x05" + b"\x06" + (2**40).to_bytes(6, "little")
    r = _Reader(w.out.getvalue(), "<test>")
    assert [r.int() for _ in range(5)] == [0, 1, 300, -5, 2**40]
    # Floats are (mantissa, exponent) integer pairs: the real file's margin is 0x0ad7a3... * 2**-28.
    r = _Reader(b"\x03\x0a\xd7\xa3\x81\x1c" + b"\x03\x9a\x99\x99\x81\x18", "<test>")
    assert r.float() == pytest.approx(0.04) and r.float() == pytest.approx(0.6)
    w = _Writer()
    for value in (0.5, -2.0, 0.0, 122.782):
        w.float(value)
    w.string("relu_")
    w.bool(True)
    r = _Reader(w.out.getvalue(), "<test>")
    assert [r.float() for _ in range(4)] == [0.5, -2.0, 0.0, 122.782]
    assert r.string() == "relu_" and r.bool() is True


def test_real_face_recognition_file_loads():
    path = package_path("dlib_resnet")
    if path is None:
        pytest.skip("face_recognition_models is not installed")
    network = read_dlib_network(path)
    kinds = network.kinds()
    assert (kinds.count("con"), kinds.count("affine"), kinds.count("add_prev"), kinds.count("fc")) == (29, 29, 14, 1)
    assert network.input.params["nr"] == 150 and network.input.params["mean_rgb"][0] == pytest.approx(122.782, abs=1e-3)
    assert network.layers[0].params["weight"].shape == (32, 3, 7, 7)
    assert network.layers[-1].params["weight"].shape == (256, 128) and network.layers[-1].params["bias"] is None
    assert network.loss.version == "loss_metric_2"


def test_truncated_and_foreign_files_name_the_file(tmp_path):
    data = write_dlib_network(_small_network(np.random.default_rng(1)))
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibFormatError, match="truncated.dat"):
        read_dlib_network(truncated)
    foreign = tmp_path / "foreign.dat"
    foreign.write_bytes(b"PK\x03\x04 not a dlib file at all")
    with pytest.raises(DlibFormatError, match="foreign.dat"):
        read_dlib_network(foreign)
    trailing = tmp_path / "trailing.dat"
    trailing.write_bytes(data + b"\x00")
    with pytest.raises(DlibFormatError, match="bytes left"):
        read_dlib_network(trailing)


def test_registry_finds_the_package_file_or_says_how_to_install(monkeypatch, tmp_path):
    if package_path("dlib_resnet") is not None:
        assert require("dlib_resnet") == package_path("dlib_resnet")
    import talkinghead.weights.registry as registry

    monkeypatch.setattr(registry, "package_path", lambda name: None)
    monkeypatch.setattr(registry, "bundled_copy", lambda name: None)
    with pytest.raises(MissingWeightsError, match="pip install face-recognition-models"):
        require("dlib_resnet")
    # `weights add` checks the file as a dlib network, not as a torch state dict.
    bad = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(Exception, match="sha256|dlib"):
        add("dlib_resnet", bad)
    assert installed_path("dlib_resnet") is None


def test_a_base_install_reads_the_bundled_conversion(monkeypatch):
    """Without the cache's or face_recognition_models' file, the bundled safetensors is used."""
    import talkinghead.weights.registry as registry

    bundled = registry.bundled_copy("dlib_resnet")
    assert bundled is not None and bundled.suffix == ".safetensors", "models/pretrained/dlib_resnet.safetensors is missing"
    monkeypatch.setattr(registry, "package_path", lambda name: None)
    monkeypatch.setattr(registry, "asset_path", lambda name: registry.Path("/nonexistent") / name)
    assert require("dlib_resnet") == bundled


def test_the_bundled_conversion_is_dlibs_file_bit_for_bit():
    import torch

    from talkinghead.models.dlib_resnet import DlibResNet
    from talkinghead.weights.registry import bundled_copy

    path = package_path("dlib_resnet")
    if path is None:
        pytest.skip("face_recognition_models is not installed")
    original, converted = DlibResNet.from_file(path), DlibResNet.from_file(bundled_copy("dlib_resnet"))
    for key, value in original.state_dict().items():
        assert torch.equal(value, converted.state_dict()[key]), key
