"""BiSeNet face parser layout, registry loading and the two-resolution merge of LSR A.1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkinghead.data.face_parsing_segmenter import (
    COARSE_CLASSES,
    FINE_CLASSES,
    FaceParsingSegmenter,
    merge_coarse_fine,
)
from talkinghead.data.segmentation_classes import CELEBAMASK_CLASSES, CLASS_INDEX
from talkinghead.models.face_parsing import BiSeNetFaceParser
from talkinghead.weights import WeightsError, asset_path

# Names and shapes of tensors of the released 79999_iter.pth (zllrunning/face-parsing.PyTorch).
RELEASED_SHAPES = {
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.bn1.running_mean": (64,),
    "cp.resnet.layer1.0.conv1.weight": (64, 64, 3, 3),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer2.0.downsample.1.running_var": (128,),
    "cp.resnet.layer4.1.bn2.weight": (512,),
    "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
    "cp.arm32.conv_atten.weight": (128, 128, 1, 1),
    "cp.arm32.bn_atten.bias": (128,),
    "cp.conv_head32.conv.weight": (128, 128, 3, 3),
    "cp.conv_head16.bn.running_mean": (128,),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),
    "ffm.conv1.weight": (64, 256, 1, 1),
    "ffm.conv2.weight": (256, 64, 1, 1),
    "conv_out.conv.conv.weight": (256, 256, 3, 3),
    "conv_out.conv_out.weight": (19, 256, 1, 1),
    "conv_out16.conv.conv.weight": (64, 128, 3, 3),
    "conv_out32.conv_out.weight": (19, 64, 1, 1),
}


@pytest.fixture(scope="module")
def parser_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return BiSeNetFaceParser(num_classes=19).state_dict()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_HOME", str(tmp_path))
    asset_path("face_parsing").parent.mkdir(parents=True, exist_ok=True)
    return tmp_path


def test_state_dict_matches_released_layout(parser_state):
    for key, shape in RELEASED_SHAPES.items():
        assert tuple(parser_state[key].shape) == shape, key
    # No spatial path and no ImageNet classifier in the release.
    assert not any(k.startswith(("sp.", "cp.resnet.fc")) for k in parser_state)
    assert not any("conv_out.conv_out.bias" in k for k in parser_state)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    num_params = sum(v.numel() for k, v in parser_state.items() if not k.endswith(buffers))
    assert num_params == 13_300_416


def test_output_shapes_and_determinism():
    torch.manual_seed(0)
    network = BiSeNetFaceParser(num_classes=19).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        logits = network(x)
        again = network(x)
        main, aux16, aux32 = network(x, return_aux=True)
    assert logits.shape == aux16.shape == aux32.shape == (2, 19, 64, 96)
    assert torch.equal(logits, again) and torch.equal(logits, main)
    with pytest.raises(ValueError, match="divisible by 32"):
        network(torch.randn(1, 3, 50, 64))


def test_class_split_covers_every_class_once():
    assert set(COARSE_CLASSES) | set(FINE_CLASSES) == set(CELEBAMASK_CLASSES)
    assert not set(COARSE_CLASSES) & set(FINE_CLASSES)


def test_merge_rule_on_hand_made_maps():
    c = CLASS_INDEX
    coarse = np.array(
        [
            [c["hair"], c["hair"], c["skin"], c["skin"]],
            [c["skin"], c["nose"], c["l_eye"], c["neck"]],
            [c["cloth"], c["background"], c["skin"], c["l_ear"]],
        ],
        dtype=np.uint8,
    )
    fine = np.array(
        [
            [c["skin"], c["l_brow"], c["skin"], c["hair"]],
            [c["nose"], c["skin"], c["l_eye"], c["skin"]],
            [c["neck"], c["u_lip"], c["r_ear"], c["skin"]],
        ],
        dtype=np.uint8,
    )
    expected = np.array(
        [
            # coarse kept where the 512 run has no fine class; fine class from the 512 run wins
            [c["hair"], c["l_brow"], c["skin"], c["skin"]],
            # the 256 run's 'nose' is not trusted: the 512 run's 'skin' replaces it
            [c["nose"], c["skin"], c["l_eye"], c["neck"]],
            [c["cloth"], c["u_lip"], c["skin"], c["l_ear"]],
        ],
        dtype=np.uint8,
    )
    merged = merge_coarse_fine(coarse, fine)
    assert merged.dtype == np.uint8
    np.testing.assert_array_equal(merged, expected)
    with pytest.raises(ValueError, match="differ in size"):
        merge_coarse_fine(coarse, fine[:2])


def test_segment_returns_labels_at_input_size():
    torch.manual_seed(0)
    segmenter = FaceParsingSegmenter(BiSeNetFaceParser(19), coarse_size=64, fine_size=128)
    image = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    labels = segmenter.segment(image)
    assert labels.shape == (90, 70) and labels.dtype == np.uint8
    assert labels.max() < len(CELEBAMASK_CLASSES)
    np.testing.assert_array_equal(labels, segmenter.segment(image))
    with pytest.raises(ValueError, match="uint8 RGB"):
        segmenter.segment(image[..., 0])
    with pytest.raises(ValueError, match="multiples of 32"):
        FaceParsingSegmenter(BiSeNetFaceParser(19), coarse_size=100)


def test_from_registry_loads_strictly(home, parser_state):
    torch.save(parser_state, asset_path("face_parsing"))
    segmenter = FaceParsingSegmenter.from_registry()
    loaded = segmenter.network.state_dict()
    assert set(loaded) == set(parser_state)
    for key in ("cp.resnet.conv1.weight", "conv_out.conv_out.weight"):
        assert torch.equal(loaded[key], parser_state[key])
    assert (segmenter.coarse_size, segmenter.fine_size) == (256, 512)
    assert not segmenter.network.training


def test_wrong_keys_give_a_clear_error(home, parser_state):
    state = {("module.cp." + k[3:] if k.startswith("cp.") else k): v for k, v in parser_state.items()}
    state["conv_out.conv_out.weight"] = torch.zeros(5, 256, 1, 1)  # a 5-class head
    torch.save(state, asset_path("face_parsing"))
    with pytest.raises(WeightsError) as info:
        FaceParsingSegmenter.from_registry()
    message = str(info.value)
    assert str(asset_path("face_parsing")) in message
    assert "missing keys: cp." in message and "unexpected keys: module.cp." in message
    assert "wrong shape keys: conv_out.conv_out.weight" in message
