"""MetaPortrait with ``dense_mesh`` landmarks: the warp starts from the mesh correspondence; K sources in slots."""

from __future__ import annotations

import numpy as np
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
from talkinghead.models.metaportrait import MetaPortraitModel, nearest_slot, slot_indices, take_slot
from talkinghead.models.warping import correspondence_flow, warp

SIZE = 32


def mesh_config(**overrides) -> MetaPortraitModelConfig:
    values = dict(
        image_size=SIZE, landmark_style="dense_mesh", landmark_channels=7,
        motion_encoder=MotionEncoderConfig(8, 16, 3, 16),
        flow_network=FlowNetworkConfig(8, 16, 2),
        refinement_network=RefinementNetworkConfig(8, 16, 2, 1, 8, residual=True),
        discriminator=PatchDiscriminatorConfig(8, 16, 2, 1),
    )
    return MetaPortraitModelConfig(**{**values, **overrides})


def mesh_image(shift: tuple[float, float] = (0.0, 0.0), scale: float = 1.0) -> torch.Tensor:
    """(7, s, s) dense_mesh landmarks of the canonical face, moved and scaled about the centre."""
    points = (np.asarray(CANONICAL_MESH) - 0.5) * scale + 0.5
    points = points * SIZE + np.asarray(shift)
    return image_to_tensor(get_rasterizer("dense_mesh")(points, SIZE))


def test_channels_must_match_the_style():
    import pytest

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
