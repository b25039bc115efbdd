"""PSNR: peak signal-to-noise ratio between output and ground-truth 8-bit frames (LSR, Sec. 4.1)."""

from __future__ import annotations

import numpy as np

from talkinghead.evaluation.metrics.base import check_pairs, register_metric

PEAK = 255.0  # LSR computes its metrics on 8-bit images


def peak_signal_to_noise_ratio(outputs: np.ndarray, targets: np.ndarray, max_db: float | None = 100.0) -> np.ndarray:
    """Per-frame PSNR in dB, ``10 * log10(255^2 / MSE)`` with the MSE over all pixels and channels.

    Args:
        outputs: (n, h, w, 3) uint8 RGB frames (a single (h, w, 3) frame is taken as n = 1).
        targets: ground-truth frames of the same shape.
        max_db: the value reported instead of anything above it. Identical frames have MSE 0 and
            so an infinite PSNR by definition; a report needs finite numbers that can be averaged,
            hence the cap. ``None`` keeps ``inf``.

    Returns:
        (n,) float64 PSNR values.
    """
    outputs, targets = check_pairs(outputs, targets)
    if max_db is not None and not max_db > 0:
        raise ValueError(f"max_db must be a positive number of dB or None, got {max_db}")
    # Integer arithmetic keeps the squared error exact (each term <= 255^2, the sum in int64);
    # one frame at a time so a long clip never needs an (n, h, w, 3) int32 copy.
    squared_sum = np.empty(len(outputs), dtype=np.int64)  # (n,)
    for i, (output, target) in enumerate(zip(outputs, targets)):
        diff = output.astype(np.int32) - target.astype(np.int32)  # (h, w, 3)
        squared_sum[i] = np.square(diff).sum(dtype=np.int64)
    mse = squared_sum / float(np.prod(outputs.shape[1:]))
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(PEAK**2 / mse)  # inf where mse == 0
    if max_db is not None:
        values = np.minimum(values, max_db)
    return values.astype(np.float64)


@register_metric(
    "psnr",
    "frame",
    higher_is_better=True,
    description="PSNR (dB) on 8-bit RGB frames, MSE over all pixels and channels; identical frames capped at 100 dB",
)
class PSNR:
    """PSNR metric: ``metric(outputs, targets) -> (n,)`` dB values.

    Args:
        max_db: cap for (near-)identical frames, see :func:`peak_signal_to_noise_ratio`.
    """

    def __init__(self, *, max_db: float | None = 100.0):
        if max_db is not None and not max_db > 0:
            raise ValueError(f"max_db must be a positive number of dB or None, got {max_db}")
        self.max_db = max_db

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return peak_signal_to_noise_ratio(outputs, targets, self.max_db)
