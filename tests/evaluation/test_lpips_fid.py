"""LPIPS and FID: their networks' layouts and registry loading, the metrics' invariants, the FID algebra.

The pretrained files are stood in for by random state dicts with the official key names and
shapes, saved into the isolated TALKINGHEAD_HOME; what the tests check holds for any weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from talkinghead.data.video import read_video_frames
from talkinghead.evaluation.metrics.base import METRICS, MetricUnavailable, build_metric
from talkinghead.evaluation.metrics.fid import (
    FID,
    FeatureMoments,
    feature_statistics,
    fid_from_features,
    frechet_distance,
)
from talkinghead.evaluation.metrics.lpips import LPIPS, LPIPSCalibration
from talkinghead.models.alexnet import AlexNetFeatures
from talkinghead.models.inception_fid import InceptionFID
from talkinghead.weights import CorruptWeightsError, asset_path, get_asset

# torchvision's alexnet-owt-7be5be79.pth: 'features' convolutions and the ignored classifier.
ALEXNET_FEATURE_SHAPES = {
    "features.0.weight": (64, 3, 11, 11),
    "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5),
    "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3),
    "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3),
    "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3),
    "features.10.bias": (256,),
}
ALEXNET_CLASSIFIER_SHAPES = {
    "classifier.1.weight": (4096, 9216),
    "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096),
    "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}
# The official LPIPS v0.1 alex.pth.
LPIPS_ALEX_SHAPES = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
INCEPTION_FC_SHAPES = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}


def placeholders(shapes: dict[str, tuple[int, ...]], value: float = 0.01) -> dict[str, torch.Tensor]:
    """Tensors of the given shapes that cost a few bytes on disk (one element, stride 0)."""
    return {key: torch.full((), value).expand(shape) for key, shape in shapes.items()}


def relu_preserving_init(network: nn.Module) -> nn.Module:
    """He-normal convolutions, so that random activations neither vanish nor explode with depth."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.normal_(module.bias, std=0.01)
    return network


def install(name: str, source: Path) -> Path:
    """Put ``source`` where the registry looks for asset ``name`` (a symlink: no copy)."""
    target = asset_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
    return target


def save_installed(tmp_path: Path, name: str, state: dict[str, torch.Tensor]) -> Path:
    """Save ``state`` and install it as asset ``name``; returns the installed path."""
    source = tmp_path / f"source_{get_asset(name).filename}"
    torch.save(state, source)
    return install(name, source)


@pytest.fixture(scope="module")
def alexnet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return relu_preserving_init(AlexNetFeatures()).state_dict()


@pytest.fixture(scope="module")
def alexnet_file(alexnet_state, tmp_path_factory) -> Path:
    """The official key set: random feature weights, constant classifier tensors of real shapes."""
    path = tmp_path_factory.mktemp("alexnet") / get_asset("alexnet").filename
    torch.save({**alexnet_state, **placeholders(ALEXNET_CLASSIFIER_SHAPES)}, path)
    return path


@pytest.fixture(scope="module")
def lpips_alex_file(tmp_path_factory) -> Path:
    """Non-negative channel weights, as the official calibration's are."""
    generator = torch.Generator().manual_seed(1)
    state = {key: torch.rand(shape, generator=generator) * 0.1 for key, shape in LPIPS_ALEX_SHAPES.items()}
    path = tmp_path_factory.mktemp("lpips_alex") / get_asset("lpips_alex").filename
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def inception_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(2)
    network = relu_preserving_init(InceptionFID())
    generator = torch.Generator().manual_seed(3)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):  # non-trivial running statistics
            module.running_mean.normal_(0.0, 0.05, generator=generator)
            module.running_var.uniform_(0.8, 1.2, generator=generator)
    return network.state_dict()


@pytest.fixture(scope="module")
def inception_file(inception_state, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inception") / get_asset("inception_fid").filename
    torch.save({**inception_state, **placeholders(INCEPTION_FC_SHAPES)}, path)
    return path


@pytest.fixture
def lpips_installed(alexnet_file, lpips_alex_file) -> None:
    install("alexnet", alexnet_file)
    install("lpips_alex", lpips_alex_file)


@pytest.fixture(scope="module")
def frames(real_data) -> np.ndarray:
    """Four real 512 x 512 frames of a talking head, subsampled to (4, 128, 128, 3) uint8."""
    path = real_data / "liveportrait_d0.mp4"
    return np.stack([rgb[::4, ::4] for _, _, rgb in read_video_frames(path, [0, 25, 50, 75])])


def noisy(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- networks


def test_alexnet_layout_matches_torchvision():
    network = AlexNetFeatures()
    assert {k: tuple(v.shape) for k, v in network.state_dict().items()} == ALEXNET_FEATURE_SHAPES
    assert sum(p.numel() for p in network.parameters()) == 2_469_696
    assert len(network.features) == 13 and network.relu_indices == [1, 4, 7, 9, 11]
    outputs = network(torch.zeros(1, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outputs] == [(64, 55, 55), (192, 27, 27), (384, 13, 13),
                                                     (256, 13, 13), (256, 13, 13)]


def test_alexnet_loads_features_and_ignores_the_classifier(alexnet_file, alexnet_state):
    install("alexnet", alexnet_file)
    network = AlexNetFeatures.from_registry()
    for key, value in network.state_dict().items():
        assert torch.equal(value, alexnet_state[key]), key
    assert not hasattr(network, "classifier")
    network.train()
    assert not network.training and not any(p.requires_grad for p in network.parameters())


def test_alexnet_wrong_shape_names_the_file(alexnet_state, tmp_path):
    state = {**alexnet_state, "features.3.weight": torch.zeros(192, 64, 3, 3)}
    path = save_installed(tmp_path, "alexnet", state)
    with pytest.raises(CorruptWeightsError) as info:
        AlexNetFeatures.from_registry()
    assert str(path) in str(info.value) and "features.3.weight" in str(info.value)


def test_inception_layout_and_registry_forward(inception_file, inception_state, frames):
    install("inception_fid", inception_file)
    network = InceptionFID.from_registry()
    assert sum(p.numel() for p in network.parameters()) == 21_785_568
    assert "fc.weight" not in network.state_dict()
    for key, value in network.state_dict().items():
        assert torch.equal(value, inception_state[key]), key
    # The FID-specific blocks: padding-free average pools, a max pool in Mixed_7c.
    assert network.Mixed_7b.pool == "avg" and network.Mixed_7c.pool == "max"
    images = torch.from_numpy(frames[:2]).permute(0, 3, 1, 2).float() / 255.0  # (2, 3, 128, 128)
    with torch.no_grad():
        features = network(images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert (features >= 0).all() and features.std() > 0  # means of ReLU outputs, not degenerate
    # The FID metric feeds uint8 frames the same way.
    metric = build_metric("fid", batch_size=1)
    np.testing.assert_allclose(metric.extractor(frames[:2]), features.double().numpy(), rtol=1e-5, atol=1e-6)


def test_inception_preprocess_resizes_to_299_and_maps_to_signed_range():
    network = InceptionFID()
    x = network.preprocess(torch.ones(1, 3, 64, 80))
    assert x.shape == (1, 3, 299, 299)
    torch.testing.assert_close(x, torch.ones_like(x))
    assert network.preprocess(torch.zeros(1, 3, 299, 299)).eq(-1).all()


# ---------------------------------------------------------------- LPIPS


def test_lpips_is_zero_for_identical_images_and_grows_with_noise(lpips_installed, frames):
    metric = build_metric("lpips")
    assert isinstance(metric, LPIPS)
    same = metric(frames, frames)
    assert same.shape == (4,) and same.dtype == np.float64
    np.testing.assert_array_equal(same, 0.0)
    light, heavy = metric(noisy(frames, 4), frames), metric(noisy(frames, 40), frames)
    assert (light > 0).all() and (heavy > light).all()


def test_lpips_is_symmetric_and_independent_of_the_batching(lpips_installed, frames):
    other = noisy(frames, 20)
    forward, backward = LPIPS(batch_size=4)(frames, other), LPIPS(batch_size=3)(other, frames)
    np.testing.assert_allclose(forward, backward, rtol=1e-5)
    np.testing.assert_allclose(LPIPS(batch_size=1)(frames, other), forward, rtol=1e-5)


def test_lpips_matches_the_definition(lpips_installed, frames):
    metric = LPIPS()
    a, b = frames[:2], np.ascontiguousarray(frames[2:, ::-1])  # different images, mirrored
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def scaled(images):
        return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0 - shift) / scale

    weights = LPIPSCalibration.from_registry().state_dict()
    with torch.no_grad():
        expected = torch.zeros(2)
        for layer, (fa, fb) in enumerate(zip(metric.network.backbone(scaled(a)), metric.network.backbone(scaled(b)))):
            ua = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
            ub = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
            w = weights[f"lin{layer}.model.1.weight"].flatten()  # (c,)
            expected += torch.einsum("bchw,c->b", (ua - ub) ** 2, w) / (fa.shape[2] * fa.shape[3])
    np.testing.assert_allclose(metric(a, b), expected.double().numpy(), rtol=1e-5)


def test_lpips_registration():
    spec = METRICS["lpips"]
    assert spec.kind == "frame" and not spec.higher_is_better
    assert spec.requires == ("alexnet", "lpips_alex")
    spec = METRICS["fid"]
    assert spec.kind == "set" and not spec.higher_is_better and spec.requires == ("inception_fid",)


def test_lpips_without_weights_names_every_missing_file(alexnet_file):
    with pytest.raises(MetricUnavailable) as info:
        build_metric("lpips")
    for name in ("alexnet", "lpips_alex"):
        assert get_asset(name).filename in info.value.reason
        assert f"talkinghead weights add {name}" in info.value.reason
    install("alexnet", alexnet_file)
    with pytest.raises(MetricUnavailable) as info:
        build_metric("lpips")
    assert "lpips_alex_v0.1.pth" in info.value.reason and "alexnet-owt" not in info.value.reason


@pytest.mark.parametrize("problem", ["garbage", "wrong_keys"])
def test_lpips_corrupt_calibration_file_names_it(problem, alexnet_file, tmp_path):
    install("alexnet", alexnet_file)
    if problem == "garbage":
        path = asset_path("lpips_alex")
        path.write_bytes(np.random.default_rng(0).bytes(2048))
    else:  # keys without the Dropout slot of the official layout
        state = {f"lin{i}.model.0.weight": torch.zeros(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
        path = save_installed(tmp_path, "lpips_alex", state)
    with pytest.raises(CorruptWeightsError) as info:
        LPIPS()
    assert str(path) in str(info.value)


def test_lpips_rejects_mismatched_pairs(lpips_installed, frames):
    with pytest.raises(ValueError, match="differ in shape"):
        LPIPS()(frames, frames[:2])


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_distance_of_diagonal_gaussians_has_a_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0.0, abs=1e-10)
    # one dimension: (mu1 - mu2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_frechet_distance_of_full_covariances_matches_the_symmetric_form():
    # tr (S1 S2)^(1/2) = tr (S1^(1/2) S2 S1^(1/2))^(1/2), computed here by eigendecompositions.
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    values, vectors = np.linalg.eigh(sigma1)
    root1 = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    middle = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sum(np.sqrt(middle))
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_retries_a_non_finite_root_with_an_offset(monkeypatch):
    import scipy.linalg

    real_sqrtm, calls = scipy.linalg.sqrtm, []

    def flaky_sqrtm(matrix):
        calls.append(matrix.copy())
        return np.full_like(matrix, np.inf) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    sigma = np.diag([1.0, 0.0])  # singular
    value = frechet_distance(np.zeros(2), sigma, np.zeros(2), sigma, eps=1e-6)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (sigma + 1e-6 * np.eye(2)) @ (sigma + 1e-6 * np.eye(2)))
    assert value == pytest.approx(0.0, abs=1e-5)


def test_frechet_distance_rejects_bad_shapes_and_indefinite_covariances():
    with pytest.raises(ValueError, match="must be"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(np.zeros(2), np.diag([1.0, -4.0]), np.zeros(2), np.eye(2))


def test_feature_moments_match_numpy_far_from_the_origin():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(300, 7)) * 0.5 + 1e4  # large mean, small spread
    moments = FeatureMoments()
    for batch in np.array_split(features, 7):
        moments.update(torch.from_numpy(batch) if len(batch) % 2 else batch)  # tensors or arrays
    moments.update(np.zeros((0, 7)))
    assert moments.count == 300
    mean, covariance = moments.statistics()
    np.testing.assert_allclose(mean, features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(covariance, np.cov(features, rowvar=False), rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="dimension"):
        moments.update(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(np.zeros((1, 7)))


def test_fid_from_features_is_zero_for_one_set_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(400, 8))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-9)
    shift = np.linspace(0.1, 0.8, 8)
    # equal covariances: only the means differ
    assert fid_from_features(a, a + shift) == pytest.approx(np.sum(shift**2), rel=1e-9)
    assert fid_from_features(a, a + 2 * shift) > fid_from_features(a, a + shift)
    # fewer samples than dimensions: singular covariances still give a finite value near 0
    few = rng.normal(size=(5, 16))
    assert abs(fid_from_features(few, few)) < 1e-4


# ---------------------------------------------------------------- the FID metric


def colour_statistics(images: np.ndarray) -> np.ndarray:
    """A cheap stand-in for Inception: per-channel mean, std and quartiles, (n, 12)."""
    x = images.reshape(len(images), -1, 3).astype(np.float64) / 255.0
    quartiles = np.quantile(x, [0.25, 0.75], axis=1).transpose(1, 0, 2).reshape(len(images), 6)
    return np.concatenate([x.mean(axis=1), x.std(axis=1), quartiles], axis=1)


def test_fid_metric_accumulates_batches(real_data):
    path = real_data / "sadtalker_WDA_KatieHill_000.mp4"
    clip = np.stack([rgb[::8, ::8] for _, _, rgb in read_video_frames(path, range(0, 120, 4))])  # (30, 64, 64, 3)
    metric = build_metric("fid", extractor=colour_statistics)
    assert isinstance(metric, FID)
    for start in range(0, len(clip), 7):  # uneven batches
        metric.update(clip[start:start + 7], clip[start:start + 7])
    assert metric.output_moments.count == metric.target_moments.count == 30
    assert metric.compute() == pytest.approx(0.0, abs=1e-8)
    expected = fid_from_features(colour_statistics(clip), colour_statistics(clip))
    assert metric.compute() == pytest.approx(expected, abs=1e-8)

    distances = []
    for offset in (10, 40):
        metric.reset()
        brighter = np.clip(clip.astype(np.int16) + offset, 0, 255).astype(np.uint8)
        metric.update(brighter, clip)
        distances.append(metric.compute())
        assert distances[-1] == pytest.approx(
            fid_from_features(colour_statistics(brighter), colour_statistics(clip)), rel=1e-9)
    assert 0 < distances[0] < distances[1]


def test_fid_metric_needs_two_images_per_set(frames):
    metric = FID(extractor=colour_statistics)
    metric.update(frames[:1], frames)
    with pytest.raises(ValueError, match="at least 2 outputs"):
        metric.compute()


def test_fid_without_weights_is_unavailable():
    with pytest.raises(MetricUnavailable) as info:
        build_metric("fid")
    assert info.value.name == "fid"
    assert "pt_inception-2015-12-05-6726825d.pth" in info.value.reason
    assert "talkinghead weights add inception_fid" in info.value.reason


def test_fid_with_a_corrupt_file_names_it():
    path = asset_path("inception_fid")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptWeightsError) as info:
        build_metric("fid")
    assert str(path) in str(info.value)


@pytest.mark.slow
def test_fid_with_inception_end_to_end(inception_file, frames):
    """The whole pipeline at 2048 dimensions (the matrix square root alone takes ~15 s on one core)."""
    install("inception_fid", inception_file)
    metric = build_metric("fid", batch_size=2)
    metric.update(frames, frames)
    assert metric.compute() == pytest.approx(0.0, abs=1e-3)
    metric.reset()
    metric.update(noisy(frames, 60), frames)
    assert metric.compute() > 1e-3
