"""FID: Fréchet Inception distance between the generated frames and the ground truth (Heusel et al. 2017).

Each set of images is summarised by the mean and covariance of its Inception pool3 features
(2048-d, the pytorch-fid port of the TensorFlow graph, see :mod:`talkinghead.models.inception_fid`);
FID is the Fréchet (2-Wasserstein) distance between the two Gaussians with those moments:

    FID = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

The metric accumulates running float64 sums (feature sum and sum of outer products) batch by
batch, so memory does not grow with the number of images (two 2048 x 2048 float64 matrices).
FID is biased upwards for small sets; values are only comparable between sets of equal size,
and below 2048 images the covariances are singular (handled as pytorch-fid does, with a small
diagonal offset).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg
import torch

from talkinghead.evaluation.metrics.base import (
    MetricUnavailable,
    check_image_batch,
    register_metric,
)
from talkinghead.models.inception_fid import FID_FEATURE_DIM, InceptionFID
from talkinghead.weights import MissingWeightsError

# (n, h, w, 3) uint8 RGB -> (n, d) features (numpy array or tensor).
FeatureExtractor = Callable[[np.ndarray], np.ndarray | torch.Tensor]

# Diagonal offset added to both covariances when (S1 S2)^(1/2) is not finite (pytorch-fid's eps).
SQRTM_EPS = 1e-6
# Largest imaginary part tolerated on the diagonal of the square root (numerical noise).
IMAGINARY_TOLERANCE = 1e-3


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """:func:`scipy.linalg.sqrtm` without its singular-matrix warning.

    With fewer images than feature dimensions (2048) the covariances are singular by
    construction, so scipy would warn on every such FID; the caller checks the result instead
    (non-finite: retry with an offset; imaginary: tolerance check).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = SQRTM_EPS
) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``, with the matrix
    square root from :func:`scipy.linalg.sqrtm`. When it is not finite (a singular product),
    ``eps * I`` is added to both covariances and the root is taken again; an imaginary part
    left by rounding is dropped.

    Args:
        mu1, mu2: (d,) means.
        sigma1, sigma2: (d, d) covariances (symmetric, positive semi-definite).
        eps: the diagonal offset of the singular case.

    Returns:
        The distance (>= 0 up to rounding).

    Raises:
        ValueError: shapes disagree, or the square root has a large imaginary part (the
            covariances are not positive semi-definite).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: means {mu1.shape}, {mu2.shape} and covariances {sigma1.shape}, "
            f"{sigma2.shape} must be (d,) and (d, d) with one d"
        )
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = np.abs(np.diagonal(covmean).imag).max()
        if largest > IMAGINARY_TOLERANCE:
            raise ValueError(
                f"frechet_distance: the square root of sigma1 @ sigma2 has an imaginary part of {largest:.3g} "
                "on its diagonal; the covariances are not positive semi-definite (non-finite or corrupted features?)"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of (n, d) features, in float64 (``np.cov`` convention)."""
    moments = FeatureMoments()
    moments.update(features)
    return moments.statistics()


def fid_from_features(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, eps: float = SQRTM_EPS) -> float:
    """FID between two feature sets, (n_a, d) and (n_b, d), each with at least two rows."""
    return frechet_distance(*feature_statistics(a), *feature_statistics(b), eps=eps)


def _as_float64_rows(features: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu", torch.float64).numpy()
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"expected (n, d) features, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    return features


class FeatureMoments:
    """Running first and second moments of feature vectors, in float64.

    The sums are taken around an origin (the first batch's mean) rather than 0: the covariance
    is then a difference of numbers of the size of the spread, not of the squared mean, which
    keeps it accurate however far the features are from 0.
    """

    def __init__(self) -> None:
        self.count = 0
        self._origin: np.ndarray | None = None  # (d,)
        self._sum: np.ndarray | None = None  # (d,) sum of (x - origin)
        self._outer: np.ndarray | None = None  # (d, d) sum of (x - origin)(x - origin)^T

    @property
    def dim(self) -> int | None:
        """Feature dimension, known after the first update."""
        return None if self._origin is None else self._origin.shape[0]

    def update(self, features: np.ndarray | torch.Tensor) -> None:
        """Add (n, d) feature vectors (n may be 0)."""
        x = _as_float64_rows(features)
        if len(x) == 0:
            return
        if self._origin is None:
            d = x.shape[1]
            self._origin = x.mean(axis=0)
            self._sum, self._outer = np.zeros(d), np.zeros((d, d))
        elif x.shape[1] != self.dim:
            raise ValueError(f"features of dimension {x.shape[1]} added to moments of dimension {self.dim}")
        centred = x - self._origin  # (n, d)
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        self.count += len(x)

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean (d,), covariance (d, d))`` with the unbiased (n - 1) normalisation."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        mean_offset = self._sum / self.count
        covariance = (self._outer - self.count * np.outer(mean_offset, mean_offset)) / (self.count - 1)
        return self._origin + mean_offset, covariance


class InceptionFeatures:
    """Feature extractor of FID: uint8 images -> (n, 2048) Inception pool3 features.

    Args:
        network: the FID Inception (:meth:`InceptionFID.from_registry`).
        device: where it runs.
        batch_size: images per forward pass.
    """

    def __init__(self, network: InceptionFID, *, device: str | torch.device = "cpu", batch_size: int = 32):
        self.device = torch.device(device)
        self.network = network.to(self.device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB -> (n, 2048) float64 features."""
        images = check_image_batch(images, "images")
        features = np.empty((len(images), FID_FEATURE_DIM), dtype=np.float64)
        for start in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + self.batch_size])).to(self.device)
            x = batch.permute(0, 3, 1, 2).float() / 255.0  # (b, 3, h, w) in [0, 1], as pytorch-fid feeds it
            features[start:start + len(batch)] = self.network(x).double().cpu().numpy()
        return features


@register_metric(
    "fid",
    "set",
    higher_is_better=False,
    description="FID: Fréchet distance of Inception-v3 pool3 features (pytorch-fid's TF-ported weights), "
    "outputs vs ground truth",
    requires=("inception_fid",),
)
class FID:
    """FID metric: ``metric.update(outputs, targets)`` batch by batch, then ``metric.compute()``.

    The outputs and the ground-truth frames form two sets; they need not be paired nor of the
    same size (but FID depends on the set sizes, so a fair comparison keeps them fixed).

    Args:
        device: where the Inception network runs.
        batch_size: images per Inception forward pass.
        extractor: a feature extractor to use instead of Inception (``(n, h, w, 3) uint8 ->
            (n, d)``); no weights are loaded then.

    Raises:
        MetricUnavailable: the Inception weights are not installed (the reason names the file
            and the ``talkinghead weights add`` command).
        CorruptWeightsError: the installed file is unreadable or is not the FID Inception.
    """

    def __init__(
        self, *, device: str | torch.device = "cpu", batch_size: int = 32, extractor: FeatureExtractor | None = None
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if extractor is None:
            try:
                network = InceptionFID.from_registry("the FID metric")
            except MissingWeightsError as err:
                raise MetricUnavailable("fid", str(err)) from err
            extractor = InceptionFeatures(network, device=device, batch_size=batch_size)
        self.extractor = extractor
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self.output_moments = FeatureMoments()
        self.target_moments = FeatureMoments()

    def update(self, outputs: np.ndarray, targets: np.ndarray) -> None:
        """Add generated frames and ground-truth frames, each (n, h, w, 3) uint8 RGB."""
        outputs = check_image_batch(outputs, "outputs")
        targets = check_image_batch(targets, "targets")
        if len(outputs):
            self.output_moments.update(self.extractor(outputs))
        if len(targets):
            self.target_moments.update(self.extractor(targets))

    def compute(self) -> float:
        """FID between everything added so far (each set needs at least 2 images)."""
        for what, moments in (("outputs", self.output_moments), ("targets", self.target_moments)):
            if moments.count < 2:
                raise ValueError(f"fid needs at least 2 {what} images, got {moments.count}")
        return frechet_distance(*self.output_moments.statistics(), *self.target_moments.statistics())
