"""dlib's face-recognition ResNet in PyTorch: agreement with dlib's C++, gradients, identities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkinghead.models.dlib_resnet import DlibResNet, add_zero_padded
from talkinghead.models.face_chip import extract_face_chips
from talkinghead.weights.dlib_dnn import read_dlib_network
from talkinghead.weights.dlib_dnn_writer import write_dlib_network
from talkinghead.weights.registry import package_path

from dlib_faces import SHARED, collect_faces, cosine, dlib_tools


@pytest.fixture(scope="module")
def network() -> DlibResNet:
    if package_path("dlib_resnet") is None:
        pytest.skip("face_recognition_models is not installed")
    return DlibResNet.from_registry()


@pytest.fixture(scope="module")
def real_faces():
    """Portraits and two frames of every video of ../shared/data/real (at most 640 px), with dlib's descriptors."""
    return collect_faces(SHARED / "real", frames_per_video=2, max_side=640)


def torch_descriptors(network: DlibResNet, faces) -> np.ndarray:
    """(n, 128) descriptors of the PyTorch port, aligned in torch from dlib's five points, one batch per image size."""
    out = []
    with torch.no_grad():
        for face in faces:
            image = torch.from_numpy(face.image).permute(2, 0, 1)[None].float()
            chip = extract_face_chips(image, torch.from_numpy(face.points)[None].float(), uint8_levels=True)
            out.append(network(chip)[0].numpy())
    return np.stack(out)


def test_architecture_and_output_shape(network):
    assert len(network.blocks) == 14
    assert sum(p.numel() for p in network.parameters()) == pytest.approx(5.6e6, rel=0.05)
    chips = torch.rand(3, 3, 150, 150) * 255
    out = network(chips)
    assert out.shape == (3, 128)
    assert [f.shape[1:] for f in network.features(chips)] == [
        (32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4), (256, 2, 2)]
    assert not any(p.requires_grad for p in network.parameters())


def test_add_prev_pads_the_smaller_tensor_with_zeros():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 1, 4, 4), 10.0)
    out = add_zero_padded(a, b)
    assert out.shape == (1, 2, 4, 4)
    assert out[0, 0, 0, 0] == 11 and out[0, 0, 3, 3] == 10 and out[0, 1, 0, 0] == 1 and out[0, 1, 3, 3] == 0


def test_agrees_with_dlib_on_every_real_face(network, real_faces):
    assert len(real_faces) >= 35, "expected the portraits and video frames of ../shared/data/real"
    ours = torch_descriptors(network, real_faces)
    cosines = np.array([cosine(a, face.descriptor) for a, face in zip(ours, real_faces)])
    worst = real_faces[int(cosines.argmin())].name
    assert cosines.min() >= 0.999, f"min cosine {cosines.min():.5f} at {worst}"
    assert cosines.mean() >= 0.9995


def test_network_alone_matches_dlib_on_dlib_chips(network, real_faces):
    dlib = pytest.importorskip("dlib")
    _, predictor, recognizer = dlib_tools()
    for face in real_faces[:5]:
        rect = dlib.rectangle(*[int(v) for v in (face.points[:, 0].min() - 60, face.points[:, 1].min() - 60,
                                                  face.points[:, 0].max() + 60, face.points[:, 1].max() + 80)])
        chip = dlib.get_face_chip(face.image, predictor(face.image, rect), size=150, padding=0.25)
        with torch.no_grad():
            ours = network(torch.from_numpy(chip).permute(2, 0, 1)[None].float())[0].numpy()
        theirs = np.asarray(recognizer.compute_face_descriptor(chip))
        np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_same_person_scores_above_different_people(network, real_faces):
    videos = [f for f in real_faces if "#" in f.name]
    ours = torch_descriptors(network, videos)
    same, different, same_dlib, different_dlib = [], [], [], []
    for i in range(len(videos)):
        for j in range(i + 1, len(videos)):
            (same if videos[i].identity == videos[j].identity else different).append(cosine(ours[i], ours[j]))
            target = same_dlib if videos[i].identity == videos[j].identity else different_dlib
            target.append(cosine(videos[i].descriptor, videos[j].descriptor))
    assert np.mean(same) > np.mean(different) + 0.05
    # The ordering of pairs is dlib's own: the two mean cosines agree to 0.002.
    assert abs(np.mean(same) - np.mean(same_dlib)) < 2e-3 and abs(np.mean(different) - np.mean(different_dlib)) < 2e-3


def test_gradients_reach_the_input_pixels_through_the_alignment(network, real_faces):
    face = real_faces[0]
    image = torch.from_numpy(face.image).permute(2, 0, 1)[None].float().requires_grad_(True)
    points = torch.from_numpy(face.points)[None].float().requires_grad_(True)
    descriptor = network(extract_face_chips(image, points))
    descriptor.norm().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    ys, xs = image.grad[0].abs().sum(0).nonzero(as_tuple=True)
    # Only pixels around the face receive gradient.
    assert xs.min() >= face.points[:, 0].min() - 150 and xs.max() <= face.points[:, 0].max() + 150
    assert points.grad is not None and torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0


def test_a_file_written_in_dlibs_format_runs_the_same_in_dlib(network, tmp_path):
    """Random weights in the real architecture, written by our writer, loaded by dlib's C++."""
    dlib = pytest.importorskip("dlib")
    parsed = read_dlib_network(package_path("dlib_resnet"))
    rng = np.random.default_rng(0)
    for layer in parsed.layers:
        for key in ("weight", "gamma", "beta", "bias"):
            value = layer.params.get(key)
            if isinstance(value, np.ndarray):
                layer.params[key] = (value * rng.uniform(0.5, 1.5, value.shape)).astype(np.float32)
    path = tmp_path / "random_resnet.dat"
    path.write_bytes(write_dlib_network(parsed))
    theirs_model = dlib.face_recognition_model_v1(str(path))
    ours_model = DlibResNet.from_file(path)
    chip = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    theirs = np.asarray(theirs_model.compute_face_descriptor(chip))
    with torch.no_grad():
        ours = ours_model(torch.from_numpy(chip).permute(2, 0, 1)[None].float())[0].numpy()
    assert cosine(ours, theirs) > 0.99999
    assert not np.allclose(ours, network(torch.from_numpy(chip).permute(2, 0, 1)[None].float())[0].numpy(), atol=1e-3)


@pytest.mark.slow
def test_agrees_with_dlib_on_training_video_frames(network):
    """50+ frames of ../shared/data/train_videos (2 frames of each of up to 40 clips)."""
    faces = collect_faces(SHARED / "train_videos", frames_per_video=2, portraits=False, max_videos=40)
    assert len(faces) >= 50
    ours = torch_descriptors(network, faces)
    cosines = np.array([cosine(a, face.descriptor) for a, face in zip(ours, faces)])
    print(f"train_videos: {len(faces)} faces, cosine vs dlib min {cosines.min():.6f} mean {cosines.mean():.6f}")
    assert cosines.min() >= 0.999
