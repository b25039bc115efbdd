"""ID-SIM with its three face embedders, ArcFace's IResNet-100 layout, and the training-free baselines."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from talkinghead.data.image_sequence import read_image
from talkinghead.data.video import read_video_frames
from talkinghead.evaluation.baselines import (
    BASELINES,
    border_anchors,
    closest_source,
    copy_source,
    get_baseline,
    landmark_warp,
)
from talkinghead.evaluation.face_embedding import (
    ARCFACE_TEMPLATE,
    ArcFaceEmbedder,
    DlibFaceEmbedder,
    DlibFaceFinder,
    VGGFaceEmbedder,
    arcface_five_points,
    build_face_embedder,
    similarity_transform,
    square_crop,
)
from talkinghead.evaluation.metrics.base import METRICS, MetricUnavailable, build_metric
from talkinghead.evaluation.metrics.id_sim import IDSim
from talkinghead.models.arcface import IResNet, iresnet100
from talkinghead.models.vgg import VGGFace
from talkinghead.weights import CorruptWeightsError, asset_path

pytest.importorskip("dlib", reason="dlib is installed by `pip install -e .[dlib]` (make test does it)")

# Frames of liveportrait_d18.mp4 (one man): 0, 1 and 60 closed mouth, 61 starting to open,
# 120 and 122 wide open.
D18_FRAMES = (0, 1, 60, 61, 120, 122)
MOUTH = slice(48, 68)  # iBUG mouth points


def install(name: str, state: dict[str, torch.Tensor]) -> None:
    """Save ``state`` where the registry looks for asset ``name`` (inside the test's TALKINGHEAD_HOME)."""
    target = asset_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)


@pytest.fixture(scope="module")
def photos(real_data) -> dict[str, np.ndarray]:
    """Two photos of one woman (256 px face crops) and one of Joe Biden, brought to the same size."""
    biden = cv2.resize(read_image(real_data / "facerec_biden2.jpg"), (256, 256), interpolation=cv2.INTER_AREA)
    return {
        "happy": read_image(real_data / "sadtalker_happy.png"),
        "sad": read_image(real_data / "sadtalker_sad.png"),
        "biden": biden,
    }


@pytest.fixture(scope="module")
def d18(real_data) -> dict[int, np.ndarray]:
    """Frames of liveportrait_d18.mp4 by index, (480, 480, 3) uint8."""
    return {index: rgb for index, _, rgb in read_video_frames(real_data / "liveportrait_d18.mp4", D18_FRAMES)}


@pytest.fixture(scope="module")
def d18_landmarks(d18) -> dict[int, np.ndarray]:
    """mediapipe's iBUG-68 landmarks of the d18 frames, (68, 2) float64 each."""
    from talkinghead.data.landmarks.factory import create_landmarker

    landmarker = create_landmarker("mediapipe")
    try:
        return {index: landmarker.detect(frame)[0].ibug68[:, :2].astype(np.float64) for index, frame in d18.items()}
    finally:
        landmarker.close()


@pytest.fixture(scope="module")
def id_sim() -> IDSim:
    return IDSim()


# ---- ID-SIM with the offline dlib descriptor -------------------------------------------------------


def test_an_image_is_identical_to_itself(id_sim, photos):
    embeddings = id_sim.embed(np.stack([photos["happy"], photos["biden"]]))
    assert embeddings.shape == (2, 128) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    values = id_sim(np.stack([photos["happy"]] * 2), np.stack([photos["happy"]] * 2))
    assert values.shape == (2,) and values.dtype == np.float64
    np.testing.assert_allclose(values, 1.0, atol=1e-5)


def test_same_person_is_more_similar_than_different_people(id_sim, photos, d18):
    same, different = id_sim(np.stack([photos["happy"]] * 2), np.stack([photos["sad"], photos["biden"]]))
    assert same > 0.9 and different < 0.85 and same - different > 0.1
    # Two frames of one video against one frame against another man.
    frames = id_sim.embed(np.stack([d18[0], d18[120]]))
    biden = id_sim.embed(cv2.resize(photos["biden"], (480, 480)))
    assert id_sim.similarity(frames[:1], frames[1:])[0] > id_sim.similarity(frames[:1], biden)[0] + 0.1


def test_nan_where_no_face(id_sim, photos):
    blank = np.full_like(photos["happy"], 128)
    noise = np.random.default_rng(0).integers(0, 256, photos["happy"].shape, dtype=np.uint8)
    embeddings = id_sim.embed(np.stack([blank, noise]))
    assert np.isnan(embeddings).all()
    values = id_sim(np.stack([photos["happy"], blank]), np.stack([photos["happy"], photos["happy"]]))
    assert values[0] == pytest.approx(1.0, abs=1e-5) and np.isnan(values[1])
    # A face missing from the ground truth is NaN too.
    assert np.isnan(id_sim(photos["happy"], blank)).all()


def test_cached_ground_truth_embeddings_give_the_same_values(id_sim, photos):
    outputs, targets = np.stack([photos["sad"], photos["biden"]]), np.stack([photos["happy"]] * 2)
    cached = id_sim(outputs, target_embeddings=id_sim.embed(targets))
    np.testing.assert_allclose(cached, id_sim(outputs, targets))
    with pytest.raises(ValueError, match="target_embeddings"):
        id_sim(outputs, target_embeddings=id_sim.embed(targets[:1]))


def test_tight_and_tiny_face_crops_are_still_found(photos):
    finder = DlibFaceFinder(5)
    happy = photos["happy"]
    # A crop smaller than the face rectangle: no margin for the detector until the border is padded.
    tight = square_crop(happy, (123.5, 158.5), 0.7 * 156, 128)
    assert finder.find(tight).how == "padded"
    # A 32 px crop is below the detector's smallest face; the whole image is taken as the face,
    # confirmed by detecting a face in the aligned chip.
    tiny = square_crop(happy, (123.5, 158.5), 1.3 * 156, 32)
    face = finder.find(tiny)
    assert face is not None and face.how == "whole-image"
    embedder = DlibFaceEmbedder(finder)
    assert embedder.embed(tiny)[0] @ embedder.embed(happy)[0] > 0.9
    assert DlibFaceFinder(5, whole_image_fallback=False).find(tiny) is None


def test_registered_with_a_report_label_naming_the_network(id_sim):
    assert METRICS["id_sim"].kind == "frame" and METRICS["id_sim"].higher_is_better
    assert id_sim.network == "dlib-resnet"  # the offline default: dlib's network, batched in PyTorch
    assert id_sim.description.startswith("ID-SIM (dlib ResNet 128-d (PyTorch port")
    assert IDSim(network="dlib").description == "ID-SIM (dlib ResNet 128-d; not comparable with VGGFace/ArcFace numbers)"
    assert isinstance(build_metric("id_sim"), IDSim)
    with pytest.raises(ValueError, match="dlib-resnet, dlib, vggface, arcface"):
        IDSim(network="facenet")


def test_dlib_resnet_gives_dlibs_numbers(id_sim, photos, d18):
    """The PyTorch port (default) against dlib's C++ (``--id-network dlib``) on the same images."""
    images = np.stack([photos["happy"], photos["sad"], photos["biden"], np.full_like(photos["happy"], 128)])
    ours, theirs = id_sim.embed(images), IDSim(network="dlib").embed(images)
    assert np.isnan(ours[3]).all() and np.isnan(theirs[3]).all()
    assert ((ours[:3] * theirs[:3]).sum(1) >= 0.999).all()
    frames = np.stack([d18[0], d18[60], d18[120]])
    assert ((id_sim.embed(frames) * IDSim(network="dlib").embed(frames)).sum(1) >= 0.999).all()


# ---- VGG-Face and ArcFace embedders through the weights registry ----------------------------------


@pytest.mark.parametrize("network, filename", [("vggface", "vgg_face_dag.pth"), ("arcface", "arcface_r100_ms1mv3.pth")])
def test_missing_weights_are_a_clear_error(network, filename):
    for build in (lambda: build_face_embedder(network), lambda: IDSim(network=network)):
        with pytest.raises(MetricUnavailable) as info:
            build()
        assert filename in str(info.value) and f"talkinghead weights add {network}" in str(info.value)
        assert info.value.name == "id_sim"


def test_vggface_embedder_on_real_shaped_weights(photos):
    torch.manual_seed(0)
    convs = VGGFace(with_fc=False).state_dict()
    fc_shapes = {"fc6": (4096, 25088), "fc7": (4096, 4096), "fc8": (2622, 4096)}
    fc = {}
    for name, shape in fc_shapes.items():  # one value expanded: real shapes, a few bytes on disk
        fc[f"{name}.weight"] = torch.full((), 1e-3).expand(shape)
        fc[f"{name}.bias"] = torch.full((), 0.01).expand(shape[:1])
    install("vggface", {**convs, **fc})
    metric = IDSim(network="vggface")
    embeddings = metric.embed(np.stack([photos["happy"], photos["biden"]]))
    assert embeddings.shape == (2, 4096) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert "VGG-Face" in metric.description and "not comparable" in metric.description
    assert isinstance(metric.embedder, VGGFaceEmbedder)


def test_arcface_embedder_aligns_and_matches_the_network(photos):
    torch.manual_seed(0)
    network = iresnet100()
    install("arcface", network.state_dict())
    embedder = build_face_embedder("arcface")
    assert isinstance(embedder, ArcFaceEmbedder)
    images = np.stack([photos["happy"], photos["sad"]])
    embeddings = embedder.embed(images)
    assert embeddings.shape == (2, 512) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    # The loaded network is the saved one, and the crop lands the five points on the template.
    face = embedder.finder.find(images[0])
    crop = embedder.crop(face)
    assert crop.shape == (112, 112, 3)
    matrix = similarity_transform(arcface_five_points(face.points), ARCFACE_TEMPLATE)
    points = arcface_five_points(face.points) @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(points - ARCFACE_TEMPLATE).max() < 6.0
    with torch.inference_mode():
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float()
        expected = torch.nn.functional.normalize(network(IResNet.preprocess(x)), dim=1)[0].numpy()
    np.testing.assert_allclose(embeddings[0], expected, atol=1e-4)


def test_iresnet100_has_insightface_layout():
    with torch.device("meta"):
        network = iresnet100()
    assert sum(p.numel() for p in network.parameters()) == pytest.approx(65.2e6, rel=2e-3)
    shapes = {key: tuple(value.shape) for key, value in network.state_dict().items()}
    assert shapes["conv1.weight"] == (64, 3, 3, 3)
    assert shapes["prelu.weight"] == (64,)
    assert shapes["layer1.0.bn1.weight"] == (64,)
    assert shapes["layer1.0.downsample.0.weight"] == (64, 64, 1, 1)
    assert shapes["layer3.29.conv2.weight"] == (256, 256, 3, 3)
    assert shapes["layer4.2.bn3.running_var"] == (512,)
    assert shapes["bn2.weight"] == (512,)
    assert shapes["fc.weight"] == (512, 25088)
    assert shapes["features.weight"] == (512,)
    assert "layer3.30.conv1.weight" not in shapes and "layer1.1.downsample.0.weight" not in shapes
    assert not any(p.requires_grad for p in network.parameters()) and not network.train().training


def test_arcface_file_with_wrong_keys_names_the_file():
    install("arcface", {"conv1.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(CorruptWeightsError) as info:
        IResNet.from_registry()
    assert str(asset_path("arcface")) in str(info.value) and "missing keys" in str(info.value)


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([4.0, -9.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rotation.T + shift
    np.testing.assert_allclose(similarity_transform(src, dst), np.c_[scale * rotation, shift], atol=1e-9)


# ---- Baselines -------------------------------------------------------------------------------------


def sources(d18, d18_landmarks, indices=(0, 60, 120)) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([d18[i] for i in indices]), np.stack([d18_landmarks[i] for i in indices])


def test_copy_source_picks_the_frame_with_the_nearest_landmarks(d18, d18_landmarks):
    images, points = sources(d18, d18_landmarks)
    # Frame 1 is next to 0 (closed mouth), 61 next to 60, 122 next to 120 (mouth wide open).
    for target, expected in ((1, 0), (61, 1), (122, 2)):
        assert closest_source(points, d18_landmarks[target]) == expected
        output = copy_source(images, points, d18_landmarks[target])
        assert output.shape == (480, 480, 3) and output.dtype == np.uint8
        np.testing.assert_array_equal(output, images[expected])
    assert not np.shares_memory(copy_source(images, points, d18_landmarks[122]), images)  # a copy


def test_landmark_warp_with_unmoved_landmarks_returns_the_source(d18, d18_landmarks):
    images, points = sources(d18, d18_landmarks)
    output = landmark_warp(images, points, points[2])
    assert output.shape == (480, 480, 3) and output.dtype == np.uint8
    assert np.abs(output.astype(int) - images[2]).max() <= 1


def test_landmark_warp_moves_the_mouth_and_keeps_the_background(d18, d18_landmarks):
    images, points = sources(d18, d18_landmarks)
    source, source_points = images[2], points[2]  # mouth wide open: a dark, easy-to-follow region
    shift = np.array([0.0, 12.0])
    target = source_points.copy()
    target[MOUTH] += shift
    output = landmark_warp(images, points, target)

    # The mouth's pixels are now 12 px lower: the output there matches the source above it.
    cx, cy = source_points[60:68].mean(0).round().astype(int)  # inner-lip centre in the source
    r = 10
    moved = output[cy + 12 - r:cy + 12 + r, cx - r:cx + r].astype(int)
    original = source[cy - r:cy + r, cx - r:cx + r].astype(int)
    unmoved = source[cy + 12 - r:cy + 12 + r, cx - r:cx + r].astype(int)
    assert np.abs(moved - original).mean() < 0.25 * np.abs(unmoved - original).mean()

    # Every triangle without a mouth point maps to itself, so all pixels outside the face's
    # outline (and far from it) are exactly the source's.
    face = np.zeros(source.shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(source_points.astype(np.int32)), 1)
    near_face = cv2.dilate(face, np.ones((5, 5), np.uint8)).astype(bool)
    np.testing.assert_array_equal(output[~near_face], source[~near_face])
    assert (~near_face).mean() > 0.6


def test_landmark_warp_moves_the_head_with_its_landmarks(d18, d18_landmarks):
    images, points = sources(d18, d18_landmarks, (0,))
    output = landmark_warp(images, points, points[0] + np.array([10.0, 0.0]))
    # The nose tip's neighbourhood arrives 10 px to the right; the image corners stay put.
    x, y = points[0][30].round().astype(int)
    np.testing.assert_allclose(output[y - 5:y + 5, x + 5:x + 15], images[0][y - 5:y + 5, x - 5:x + 5], atol=2)
    np.testing.assert_array_equal(output[:20, :20], images[0][:20, :20])


def test_baselines_share_one_signature_and_check_inputs(d18, d18_landmarks):
    assert set(BASELINES) == {"copy-source", "landmark-warp"}
    images, points = sources(d18, d18_landmarks)
    for name in BASELINES:
        assert get_baseline(name)(images, points, d18_landmarks[1]).shape == images.shape[1:]
        with pytest.raises(ValueError, match="target_landmarks"):
            get_baseline(name)(images, points, d18_landmarks[1][:5])
        with pytest.raises(ValueError, match="source_landmarks"):
            get_baseline(name)(images, points[:2], d18_landmarks[1])
        with pytest.raises(ValueError, match="uint8"):
            get_baseline(name)(images.astype(np.float32), points, d18_landmarks[1])
    with pytest.raises(KeyError, match="copy-source, landmark-warp"):
        get_baseline("first-order")
    anchors = border_anchors(480, 480)
    assert len(anchors) == 16 and len(np.unique(anchors, axis=0)) == 16
