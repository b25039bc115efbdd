"""SSIM: structural similarity (Wang et al. 2004) between output and ground-truth 8-bit frames.

The reference formulation: local statistics under an 11x11 Gaussian window (sigma 1.5),
``K1 = 0.01``, ``K2 = 0.03``, dynamic range ``L = 255``; the SSIM map is kept only where the
window lies fully inside the image (the "valid" region, as in the authors' MATLAB code) and
averaged. LSR reports SSIM on colour 8-bit images: each RGB channel is scored on its own and
the three scores are averaged.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkinghead.evaluation.metrics.base import check_pairs, register_metric

DATA_RANGE = 255.0  # L in the paper: 8-bit images


def structural_similarity(
    output: np.ndarray,
    target: np.ndarray,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.ndarray:
    """Mean SSIM of each channel of one image pair.

    Args:
        output: (h, w, c) image with values in [0, 255] (any numeric dtype).
        target: (h, w, c) image of the same shape.
        window_size: side of the Gaussian window (odd).
        sigma: standard deviation of the Gaussian window, in pixels.
        k1, k2: the constants of SSIM Eq. 13 (Wang et al. 2004): ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``.

    Returns:
        (c,) float64 mean SSIM of each channel over the valid region.
    """
    if output.shape != target.shape or output.ndim != 3:
        raise ValueError(f"expected two (h, w, c) images of the same shape, got {output.shape} and {target.shape}")
    if window_size % 2 != 1 or window_size < 3:
        raise ValueError(f"window_size must be an odd number >= 3, got {window_size}")
    h, w = output.shape[:2]
    if h < window_size or w < window_size:
        raise ValueError(f"SSIM needs images of at least {window_size}x{window_size} pixels, got {h}x{w}")
    x = output.astype(np.float64)
    y = target.astype(np.float64)
    c1 = (k1 * DATA_RANGE) ** 2
    c2 = (k2 * DATA_RANGE) ** 2

    def local_mean(image: np.ndarray) -> np.ndarray:
        # A normalised Gaussian weighting; the border handling does not matter as the
        # border is cropped below. Applied to every channel at once.
        return cv2.GaussianBlur(image, (window_size, window_size), sigmaX=sigma, sigmaY=sigma)

    mu_x, mu_y = local_mean(x), local_mean(y)  # (h, w, c)
    # Local (co)variances as E[xy] - E[x]E[y], the population (weighted) estimates of the paper.
    var_x = local_mean(x * x) - mu_x * mu_x
    var_y = local_mean(y * y) - mu_y * mu_y
    cov_xy = local_mean(x * y) - mu_x * mu_y
    # SSIM Eq. 13 (Wang et al. 2004).
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    if ssim_map.ndim == 2:  # OpenCV drops the channel axis of single-channel images
        ssim_map = ssim_map[..., None]
    pad = window_size // 2
    valid = ssim_map[pad : h - pad, pad : w - pad]  # (h - 2 pad, w - 2 pad, c)
    return valid.mean(axis=(0, 1))


@register_metric(
    "ssim",
    "frame",
    higher_is_better=True,
    description="SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5, valid region) per RGB channel, averaged",
)
class SSIM:
    """SSIM metric: ``metric(outputs, targets) -> (n,)``, the channel mean of each frame's SSIM.

    Args:
        window_size, sigma, k1, k2: see :func:`structural_similarity`; the defaults are the paper's.
    """

    def __init__(self, *, window_size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03):
        if window_size % 2 != 1 or window_size < 3:
            raise ValueError(f"window_size must be an odd number >= 3, got {window_size}")
        if sigma <= 0 or k1 <= 0 or k2 <= 0:
            raise ValueError(f"sigma, k1 and k2 must be positive, got {sigma}, {k1}, {k2}")
        self.window_size = window_size
        self.sigma = sigma
        self.k1 = k1
        self.k2 = k2

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        outputs, targets = check_pairs(outputs, targets)
        values = np.empty(len(outputs), dtype=np.float64)  # (n,)
        for i, (output, target) in enumerate(zip(outputs, targets)):
            per_channel = structural_similarity(
                output, target, window_size=self.window_size, sigma=self.sigma, k1=self.k1, k2=self.k2
            )
            values[i] = per_channel.mean()
        return values
