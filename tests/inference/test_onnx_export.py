"""ONNX export of LSR's per-frame synthesis (G_l + G_s) and its onnxruntime check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from talkinghead.config import load_config, to_dict
from talkinghead.config.lsr import (
    DiscriminatorConfig,
    EncoderConfig,
    ImageGeneratorConfig,
    LayoutGeneratorConfig,
    LSRModelConfig,
)
from talkinghead.inference.onnx_export import (
    INSTALL_HINT,
    SynthesisNetwork,
    example_inputs,
    export_onnx,
    load_synthesis_session,
)
from talkinghead.models.lsr import LSRModel

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

TINY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "lsr" / "tiny.yaml"


def micro_model_config() -> LSRModelConfig:
    """The smallest LSR that builds (16 px, one block per network): a quick export."""
    return LSRModelConfig(
        image_size=16,
        latent_dim=8,
        encoder=EncoderConfig(
            base_channels=4, max_channels=8, num_down_blocks=1, pooling="mean"
        ),
        layout_generator=LayoutGeneratorConfig(
            base_channels=4, max_channels=8, num_down_blocks=1, layout_channels=3
        ),
        image_generator=ImageGeneratorConfig(
            base_channels=4,
            max_channels=8,
            spade_hidden_channels=4,
            num_up_blocks=1,
            num_middle_blocks=0,
        ),
        discriminator=DiscriminatorConfig(
            base_channels=4, max_channels=8, num_down_blocks=1
        ),
    )


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """The 64 px tiny preset (random weights), exported once for the module."""
    torch.manual_seed(0)
    model = LSRModel(load_config(TINY_CONFIG).model).eval()
    folder = tmp_path_factory.mktemp("onnx") / "export"
    result = export_onnx(model, folder)
    return model, folder, result


@pytest.fixture
def micro_model() -> LSRModel:
    torch.manual_seed(0)
    return LSRModel(micro_model_config())


def test_export_writes_one_checked_self_contained_graph(tiny_export):
    model, folder, result = tiny_export
    assert result.path == folder / "synthesis.onnx" and result.path.is_file()
    files = sorted(p.name for p in folder.iterdir())
    # No external weights file; the marker lists what --overwrite may replace.
    assert files == [".talkinghead-output.json", "onnx_export.json", "synthesis.onnx"]
    # No temporary folder left beside it.
    assert [p.name for p in folder.parent.iterdir()] == ["export"]
    assert result.batch_sizes_checked == [1, 3]
    assert result.opset == 18 and result.seconds > 0
    assert result.max_abs_diff < 1e-4  # measured about 5e-6

    graph = onnx.load(str(result.path))
    onnx.checker.check_model(graph)
    external = onnx.TensorProto.EXTERNAL
    assert not [t.name for t in graph.graph.initializer if t.data_location == external]
    size, channels, dim = 64, 3, 128
    # Shapes after the batch dimension, which must be symbolic.
    expected = {
        "landmarks": [channels, size, size],
        "z_layout": [dim],
        "z_style": [dim],
        "image": [3, size, size],
    }
    assert [i.name for i in graph.graph.input] == ["landmarks", "z_layout", "z_style"]
    assert [o.name for o in graph.graph.output] == ["image"]
    for value in [*graph.graph.input, *graph.graph.output]:
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param and not dims[0].HasField("dim_value"), value.name
        assert [d.dim_value for d in dims[1:]] == expected[value.name], value.name

    manifest = json.loads((folder / "onnx_export.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == [
        "landmarks",
        "z_layout",
        "z_style",
    ]
    assert manifest["inputs"][0]["shape"] == ["batch", channels, size, size]
    assert manifest["inputs"][0]["range"] == [-1.0, 1.0]
    assert manifest["outputs"][0]["name"] == "image"
    assert manifest["outputs"][0]["shape"] == ["batch", 3, size, size]
    assert manifest["model"] == to_dict(model.config)
    assert manifest["check"]["max_abs_diff"] == pytest.approx(result.max_abs_diff)
    assert manifest["check"]["batch_sizes"] == [1, 3]


def test_onnxruntime_matches_pytorch_at_an_unchecked_batch_size(tiny_export):
    model, folder, _ = tiny_export
    network = SynthesisNetwork.from_model(model).eval()
    inputs = example_inputs(model, 2, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = network(*inputs)
        # The same as the inference model's forward with a person-state dict.
        assert torch.equal(expected, model(inputs[0], {"z_layout": inputs[1], "z_style": inputs[2]}))
    session = load_synthesis_session(folder)  # the folder or the file both work
    feeds = dict(zip(["landmarks", "z_layout", "z_style"], (t.numpy() for t in inputs)))
    (image,) = session.run(["image"], feeds)
    assert image.shape == (2, 3, 64, 64)
    np.testing.assert_allclose(image, expected.numpy(), rtol=0, atol=1e-4)


def test_existing_folder_is_kept_without_overwrite_and_replaced_with_it(
    tmp_path, micro_model
):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--overwrite") as info:
        export_onnx(micro_model, folder)
    assert str(folder) in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert [p.name for p in folder.iterdir()] == ["old.txt"]

    # --overwrite never deletes a file the export did not write.
    with pytest.raises(ValueError, match="old.txt"):
        export_onnx(micro_model, folder, overwrite=True)
    assert [p.name for p in folder.iterdir()] == ["old.txt"]

    (folder / "old.txt").unlink()
    export_onnx(micro_model, folder)
    micro_model.train()
    result = export_onnx(micro_model, folder, overwrite=True)  # its own export: replaced
    assert sorted(p.name for p in folder.iterdir()) == [
        ".talkinghead-output.json",
        "onnx_export.json",
        "synthesis.onnx",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert result.max_abs_diff < 1e-4
    # The caller's model is untouched: still training, still with gradients.
    assert micro_model.training
    assert all(p.requires_grad for p in micro_model.parameters())


def test_unmet_tolerance_raises_and_leaves_nothing(tmp_path, micro_model):
    folder = tmp_path / "export"
    with pytest.raises(
        RuntimeError, match="synthesis.onnx: onnxruntime and PyTorch differ"
    ) as info:
        export_onnx(micro_model, folder, tolerance=-1)
    assert "tolerance -1" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_session_loading_names_a_missing_or_damaged_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such ONNX file"):
        load_synthesis_session(tmp_path / "missing.onnx")
    (tmp_path / "synthesis.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(
        RuntimeError, match="synthesis.onnx: onnxruntime cannot load it"
    ):
        load_synthesis_session(tmp_path)


def test_missing_onnx_packages_say_how_to_install_them(
    tmp_path, monkeypatch, micro_model
):
    # A None entry in sys.modules makes `import onnxruntime` raise ImportError.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="onnxruntime") as info:
        load_synthesis_session(tmp_path / "synthesis.onnx")
    assert INSTALL_HINT == 'pip install -e ".[onnx]"'
    assert INSTALL_HINT in str(info.value)
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match="onnxscript"):
        export_onnx(micro_model, tmp_path / "export")
    assert not (tmp_path / "export").exists()
