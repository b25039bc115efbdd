"""FAN network layout, registry loading and the landmark decoding geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from talkinghead.data.landmarks.fan_backend import (
    FANLandmarker,
    box_to_center_scale,
    crop_face,
    crop_to_image,
    decode_heatmaps,
)
from talkinghead.models.fan import FAN
from talkinghead.weights import WeightsError, asset_path

# Names and shapes of tensors of the released 2DFAN4-11f355bf06.pth.tar (face-alignment 1.0).
RELEASED_SHAPES = {
    "conv1.weight": (64, 3, 7, 7),
    "conv1.bias": (64,),
    "bn1.running_var": (64,),
    "conv2.conv1.weight": (64, 64, 3, 3),
    "conv2.downsample.0.weight": (64,),
    "conv2.downsample.2.weight": (128, 64, 1, 1),
    "conv4.conv3.weight": (64, 64, 3, 3),
    "m0.b1_4.conv1.weight": (128, 256, 3, 3),
    "m0.b2_plus_1.bn3.running_mean": (64,),
    "m3.b3_1.conv2.weight": (64, 128, 3, 3),
    "top_m_3.bn1.weight": (256,),
    "conv_last3.bias": (256,),
    "bn_end2.running_mean": (256,),
    "l3.weight": (68, 256, 1, 1),
    "bl2.weight": (256, 256, 1, 1),
    "al2.weight": (256, 68, 1, 1),
}


@pytest.fixture(scope="module")
def fan4_state() -> dict[str, torch.Tensor]:
    """A random-weight FAN-4 state dict (random BN statistics too), made once."""
    torch.manual_seed(0)
    network = FAN(num_stacks=4)
    state = network.state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            value.uniform_(0.5, 1.5)
        elif key.endswith("running_mean"):
            value.normal_(0.0, 0.1)
    return state


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_HOME", str(tmp_path))
    asset_path("fan").parent.mkdir(parents=True, exist_ok=True)
    return tmp_path


def test_state_dict_matches_released_layout(fan4_state):
    for key, shape in RELEASED_SHAPES.items():
        assert tuple(fan4_state[key].shape) == shape, key
    # No feedback convolutions after the last stack.
    assert "bl3.weight" not in fan4_state and "al3.weight" not in fan4_state
    assert "m0.b2_plus_2.conv1.weight" not in fan4_state  # b2_plus only at the bottom level
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    num_params = sum(v.numel() for k, v in fan4_state.items() if not k.endswith(buffers))
    assert num_params == 23_820_176


def test_output_shapes_and_determinism():
    torch.manual_seed(0)
    network = FAN(num_stacks=2).eval()
    x = torch.rand(2, 3, 64, 64)  # fully convolutional: any side divisible by 64
    with torch.no_grad():
        first, second = network(x), network(x)
    assert [tuple(h.shape) for h in first] == [(2, 68, 16, 16)] * 2
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    with pytest.raises(ValueError, match="divisible by 64"):
        network(torch.rand(1, 3, 100, 100))


def test_from_registry_loads_strictly(home, fan4_state):
    torch.save(fan4_state, asset_path("fan"))
    landmarker = FANLandmarker.from_registry()
    loaded = landmarker.network.state_dict()
    assert set(loaded) == set(fan4_state)
    for key in ("conv1.weight", "l3.bias", "bn_end3.running_var"):
        assert torch.equal(loaded[key], fan4_state[key])
    assert not landmarker.network.training


def test_from_registry_accepts_files_without_batchnorm_counters(home, fan4_state):
    # Files saved by PyTorch < 0.4.1 have no num_batches_tracked entries.
    old_style = {k: v for k, v in fan4_state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old_style, asset_path("fan"))
    FANLandmarker.from_registry()


def test_wrong_keys_give_a_clear_error(home, fan4_state):
    state = dict(fan4_state)
    state["conv1.kernel"] = state.pop("conv1.weight")
    torch.save(state, asset_path("fan"))
    with pytest.raises(WeightsError) as info:
        FANLandmarker.from_registry()
    message = str(info.value)
    assert str(asset_path("fan")) in message
    assert "missing keys: conv1.weight" in message and "unexpected keys: conv1.kernel" in message
    assert "talkinghead weights add fan" in message


def test_box_to_center_scale_follows_face_alignment():
    center, scale = box_to_center_scale((100, 50, 200, 250))
    np.testing.assert_allclose(center, [150.0, 150.0 - 0.12 * 200])
    assert scale == pytest.approx(300 / 195)
    with pytest.raises(ValueError, match="x1 > x0"):
        box_to_center_scale((10, 10, 5, 20))


def test_decode_single_peak_known_answer():
    heatmaps = np.zeros((1, 68, 64, 64), np.float32)
    heatmaps[0, :, 30, 20] = 1.0  # row v = 30, column u = 20
    heatmaps[0, :, 30, 21] = 0.5  # right neighbour larger: x moves +0.25
    heatmaps[0, :, 29, 20] = 0.5  # upper neighbour larger: y moves -0.25
    heatmaps[0, 5] = 0.0
    heatmaps[0, 5, 0, 63] = 0.8  # on the border: no quarter-pixel shift
    points, scores = decode_heatmaps(heatmaps, np.array([[100.0, 120.0]]), np.array([1.0]))
    # crop side 200 px over 64 heatmap pixels: image = (p - 32) * 3.125 + centre
    expected = [(20.75 - 32) * 3.125 + 100, (30.25 - 32) * 3.125 + 120]
    np.testing.assert_allclose(points[0, 0], expected, atol=1e-4)
    np.testing.assert_allclose(points[0, 5], [(63.5 - 32) * 3.125 + 100, (0.5 - 32) * 3.125 + 120], atol=1e-4)
    assert points.dtype == np.float32 and points.shape == (1, 68, 2)
    assert scores[0, 0] == pytest.approx(1.0) and scores[0, 5] == pytest.approx(0.8)


def test_crop_and_inverse_transform_agree():
    image = np.zeros((300, 280, 3), np.uint8)
    for point, box in [((100, 120), (50, 60, 210, 240)), ((150, 90), (80, 70, 160, 170))]:
        marked = image.copy()
        marked[point[1], point[0]] = 255
        center, scale = box_to_center_scale(box)
        crop = crop_face(marked, center, scale).astype(np.float64)[..., 0]
        assert crop.shape == (256, 256)
        rows, cols = np.indices(crop.shape)
        found = np.array([(crop * cols).sum(), (crop * rows).sum()]) / crop.sum()
        # Pixel centres at +0.5; face-alignment's integer crop corners leave < 1.5 px of slack.
        back = crop_to_image(found + 0.5, center, scale, 256)
        np.testing.assert_allclose(back, point, atol=1.5)


class PeakNetwork(nn.Module):
    """Stands in for FAN: every landmark's heatmap peaks at one heatmap pixel."""

    def __init__(self, column: int, row: int):
        super().__init__()
        self.column, self.row = column, row

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        heatmaps = torch.zeros(x.shape[0], 68, 64, 64)
        heatmaps[:, :, self.row, self.column] = 0.9
        return [heatmaps]


def test_predict_maps_heatmap_peak_to_image_pixels():
    landmarker = FANLandmarker(PeakNetwork(column=32, row=16))  # type: ignore[arg-type]
    image = np.zeros((240, 320, 3), np.uint8)
    box = (100.0, 40.0, 200.0, 160.0)
    points, confidence = landmarker.predict(image, box)
    center, scale = box_to_center_scale(box)
    side = 200 * scale
    expected = [(32.5 - 32) * side / 64 + center[0], (16.5 - 32) * side / 64 + center[1]]
    assert points.shape == (68, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points, np.tile(expected, (68, 1)), atol=1e-3)
    assert confidence == pytest.approx(0.9)
    batch_points, batch_conf = landmarker.predict_batch(image, [box, (10.0, 10.0, 60.0, 70.0)])
    assert batch_points.shape == (2, 68, 2) and batch_conf.shape == (2,)
    np.testing.assert_allclose(batch_points[0], points)
    with pytest.raises(ValueError, match="uint8 RGB"):
        landmarker.predict(image.astype(np.float32), box)


def test_predict_with_a_real_network():
    torch.manual_seed(0)
    landmarker = FANLandmarker(FAN(num_stacks=1))  # one stack keeps the 256x256 forward cheap
    image = np.random.default_rng(0).integers(0, 256, (200, 180, 3), dtype=np.uint8)
    box = (40.0, 30.0, 150.0, 170.0)
    points, confidence = landmarker.predict(image, box)
    assert points.shape == (68, 2) and points.dtype == np.float32 and np.isfinite(points).all()
    assert isinstance(confidence, float)
    # Every decoded point lies inside the crop square around the box.
    center, scale = box_to_center_scale(box)
    assert (np.abs(points - center) <= 100 * scale + 1e-3).all()
