"""PSNR, SSIM and NMKE on real frames: sanity invariants, a reference SSIM, known landmark shifts."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.data.landmarks.base import FaceLandmarks
from talkinghead.data.landmarks.ibug68 import interocular_distance
from talkinghead.data.video import read_video_frames
from talkinghead.evaluation.metrics.base import METRICS, MetricUnavailable, build_metric
from talkinghead.evaluation.metrics.nmke import NMKE, normalized_mean_error
from talkinghead.evaluation.metrics.psnr import PSNR, peak_signal_to_noise_ratio
from talkinghead.evaluation.metrics.ssim import SSIM, structural_similarity

NOISE_LEVELS = (2.0, 5.0, 10.0, 20.0, 40.0)


def read_frames(path, indices) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of a video."""
    return np.stack([rgb for _, _, rgb in read_video_frames(path, indices)])


@pytest.fixture(scope="module")
def faces(real_data) -> np.ndarray:
    """(2, 480, 480, 3): one frame of a man (liveportrait_d18), one of a woman, cropped to 480."""
    man = read_frames(real_data / "liveportrait_d18.mp4", [0])[0]  # 480 x 480
    woman = read_frames(real_data / "sadtalker_WDA_KatieHill_000.mp4", [0])[0]  # 512 x 512
    return np.stack([man, woman[16:496, 16:496]])


@pytest.fixture(scope="module")
def nmke():
    metric = NMKE()
    yield metric
    metric.close()


def add_noise(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, images.shape)
    return np.clip(np.rint(images + noise), 0, 255).astype(np.uint8)


def test_metrics_are_registered_with_their_direction():
    assert METRICS["psnr"].kind == METRICS["ssim"].kind == METRICS["nmke"].kind == "frame"
    assert METRICS["psnr"].higher_is_better and METRICS["ssim"].higher_is_better
    assert not METRICS["nmke"].higher_is_better
    assert isinstance(build_metric("psnr", max_db=80.0), PSNR)
    assert isinstance(build_metric("ssim"), SSIM)


# ---------------------------------------------------------------------------------------- PSNR


def test_psnr_of_an_image_with_itself_is_the_cap(faces):
    assert np.array_equal(PSNR()(faces, faces), [100.0, 100.0])
    assert np.array_equal(PSNR(max_db=60.0)(faces, faces), [60.0, 60.0])
    assert np.all(np.isinf(PSNR(max_db=None)(faces, faces)))


def test_psnr_follows_its_formula_and_drops_with_noise(faces):
    noisy = add_noise(faces, 10.0)
    mse = ((faces.astype(np.float64) - noisy) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(PSNR()(noisy, faces), 10 * np.log10(255.0**2 / mse), rtol=1e-12)
    values = np.stack([PSNR()(add_noise(faces, s), faces) for s in NOISE_LEVELS])  # (levels, n)
    assert np.all(np.diff(values, axis=0) < 0)
    assert values.dtype == np.float64 and values.shape == (len(NOISE_LEVELS), 2)


def test_psnr_rejects_bad_input(faces):
    with pytest.raises(ValueError, match="differ in shape"):
        PSNR()(faces, faces[:1])
    with pytest.raises(ValueError, match="uint8"):
        PSNR()(faces.astype(np.float32), faces.astype(np.float32))
    with pytest.raises(ValueError, match="max_db"):
        PSNR(max_db=0.0)
    assert peak_signal_to_noise_ratio(faces[0], faces[0]).shape == (1,)  # one (h, w, 3) frame


# ---------------------------------------------------------------------------------------- SSIM


def reference_ssim(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """SSIM written out window by window (Wang et al. 2004, Eq. 13), channel-averaged."""
    half = size // 2
    offsets = np.arange(size) - half
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    h, w, channels = x.shape
    scores = []
    for c in range(channels):
        for i in range(half, h - half):
            for j in range(half, w - half):
                a = x[i - half : i + half + 1, j - half : j + half + 1, c].astype(np.float64)
                b = y[i - half : i + half + 1, j - half : j + half + 1, c].astype(np.float64)
                mu_a, mu_b = (weights * a).sum(), (weights * b).sum()
                var_a = (weights * (a - mu_a) ** 2).sum()
                var_b = (weights * (b - mu_b) ** 2).sum()
                cov = (weights * (a - mu_a) * (b - mu_b)).sum()
                scores.append(
                    (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
                )
    return float(np.mean(scores))


def test_ssim_matches_a_window_by_window_computation(faces):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (19, 23, 3), dtype=np.uint8)
    y = np.clip(x * 0.7 + rng.normal(40, 25, x.shape), 0, 255).astype(np.uint8)
    assert SSIM()(x, y)[0] == pytest.approx(reference_ssim(x, y), abs=1e-10)
    # and on a real face patch with mild noise, where SSIM is high
    patch = faces[0, 200:232, 220:250]
    noisy = add_noise(patch, 6.0)
    assert SSIM()(noisy, patch)[0] == pytest.approx(reference_ssim(noisy, patch), abs=1e-10)


def test_ssim_of_an_image_with_itself_is_exactly_one(faces):
    assert np.array_equal(SSIM()(faces, faces), [1.0, 1.0])


def test_ssim_drops_with_noise(faces):
    values = np.stack([SSIM()(add_noise(faces, s), faces) for s in NOISE_LEVELS])  # (levels, n)
    assert np.all(np.diff(values, axis=0) < 0)
    assert np.all((values > 0) & (values < 1))


def test_ssim_is_the_mean_of_the_channel_scores(faces):
    noisy = add_noise(faces[:1], 15.0)
    per_channel = structural_similarity(noisy[0], faces[0])
    assert per_channel.shape == (3,)
    assert SSIM()(noisy, faces[:1])[0] == pytest.approx(per_channel.mean(), abs=1e-15)


def test_ssim_rejects_bad_input(faces):
    with pytest.raises(ValueError, match="at least 11x11"):
        SSIM()(faces[:, :10, :10], faces[:, :10, :10])
    with pytest.raises(ValueError, match="differ in shape"):
        SSIM()(faces[:1], faces)
    with pytest.raises(ValueError, match="uint8"):
        SSIM()(faces[..., :2], faces[..., :2])
    with pytest.raises(ValueError, match="odd"):
        SSIM(window_size=8)


# ---------------------------------------------------------------------------------------- NMKE


def test_normalized_mean_error_of_known_points():
    rng = np.random.default_rng(2)
    true = rng.uniform(100, 300, (3, 68, 2))
    iod = interocular_distance(true)
    pred = true + np.array([3.0, 4.0])  # every point 5 px away
    np.testing.assert_allclose(normalized_mean_error(pred, true), 5.0 / iod)
    pred[1] = np.nan  # no face in output 1
    result = normalized_mean_error(pred, true)
    assert np.isnan(result[1]) and np.all(np.isfinite(result[[0, 2]]))
    with pytest.raises(ValueError, match="iBUG landmarks"):
        normalized_mean_error(true[:, :5], true[:, :5])
    with pytest.raises(ValueError, match="differ in shape"):
        normalized_mean_error(true[:2], true)


def test_nmke_of_an_image_with_itself_is_zero(nmke, faces):
    values = nmke(faces, faces)
    assert values.shape == (2,) and values.dtype == np.float64
    assert np.all(values < 0.005)


def test_nmke_grows_with_a_known_image_shift(nmke, faces):
    for image in faces:
        true = nmke.landmarks(image[None])  # (1, 68, 2)
        iod = float(interocular_distance(true)[0])
        assert 80 < iod < 250  # plausible face size in a 480 px frame
        shifts = (4, 8, 16)
        shifted = np.stack([np.roll(image, k, axis=1) for k in shifts])  # k px to the right
        values = nmke(shifted, target_landmarks=np.repeat(true, len(shifts), axis=0))
        expected = np.array(shifts) / iod
        np.testing.assert_allclose(values, expected, rtol=0.15, atol=0.003)
        assert np.all(np.diff(values) > 0)


def test_nmke_is_nan_without_a_face(nmke, faces):
    blank = np.full_like(faces[:1], 128)
    assert np.isnan(nmke(blank, faces[:1])[0])  # no face in the output
    assert np.isnan(nmke(faces[:1], blank)[0])  # no face in the ground truth
    assert np.all(np.isnan(nmke.landmarks(blank)))


def test_nmke_reuses_ground_truth_landmarks(nmke, faces):
    shifted = np.roll(faces, 6, axis=2)
    true = nmke.landmarks(faces)
    assert true.shape == (2, 68, 2)
    np.testing.assert_array_equal(nmke(shifted, target_landmarks=true), nmke(shifted, faces))
    with pytest.raises(ValueError, match="target_landmarks"):
        nmke(shifted, target_landmarks=true[:1])
    with pytest.raises(ValueError, match="targets"):
        nmke(shifted)


class FixedLandmarker:
    """A stand-in detector: the same face everywhere, shifted by the image's first pixel value."""

    name = "mediapipe"
    num_dense = 68

    def __init__(self):
        self.closed = False
        self.points = np.random.default_rng(3).uniform(50, 150, (68, 2)).astype(np.float32)

    def detect(self, image):
        pts = self.points + float(image[0, 0, 0])
        return [FaceLandmarks(dense=np.zeros((68, 3), np.float32), ibug68=pts, confidence=1.0)]

    def close(self):
        self.closed = True


def test_nmke_with_an_injected_detector_names_its_backend():
    detector = FixedLandmarker()
    metric = NMKE(landmarker=detector)
    assert metric.backend == "mediapipe" and "mediapipe" in metric.description
    targets = np.zeros((2, 16, 16, 3), np.uint8)
    outputs = targets.copy()
    outputs[1, 0, 0, 0] = 3  # every point moves by (3, 3)
    iod = float(interocular_distance(detector.points))
    np.testing.assert_allclose(metric(outputs, targets), [0.0, 3 * np.sqrt(2) / iod], rtol=1e-6)
    metric.close()
    assert not detector.closed  # the caller's detector stays open
    with pytest.raises(ValueError, match="backend"):
        NMKE(backend="dlib68", landmarker=detector)
    with pytest.raises(ValueError, match="unknown landmark backend"):
        NMKE(backend="openpose")


def test_nmke_without_fan_weights_is_unavailable():
    # The autouse fixture gives every test an empty weights home, so FAN is not installed.
    with pytest.raises(MetricUnavailable, match="fan"):
        build_metric("nmke", backend="fan")
