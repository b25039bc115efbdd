"""The metric interface and registry: every metric is built by name and returns per-item values.

Three kinds, by what one value describes:

* ``frame``: one value per (output, ground truth) frame pair — PSNR, SSIM, LPIPS, ID-SIM, NMKE;
  ``metric(outputs, targets) -> (n,) float64`` with NaN where a value is undefined (e.g. no
  face found for NMKE);
* ``set``: one value for a whole set of outputs — FID; ``metric.update(outputs, targets)``
  batch by batch, then ``metric.compute() -> float``;
* ``video``: one value per consecutive frame pair of one video — E_warp;
  ``metric(frames) -> (t - 1,)``.

Images are ``(n, h, w, 3)`` uint8 RGB arrays (LSR computes its metrics on 8-bit images).
A metric whose pretrained network is not installed raises :class:`MetricUnavailable`
from :func:`build_metric` with the reason, so a report can say what was skipped and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from talkinghead.errors import UnknownNameError

MetricKind = Literal["frame", "set", "video"]


class MetricUnavailable(RuntimeError):
    """A metric that cannot run here (its weights or package are missing); the message says why."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: registry name (``psnr``, ``lpips``, ...), also the report column.
        kind: ``frame``, ``set`` or ``video``.
        higher_is_better: the direction of the report's arrow.
        factory: ``factory(**options) -> metric`` (raises MetricUnavailable when it cannot run).
        description: one line for reports (what is measured, with which network).
    """

    name: str
    kind: MetricKind
    higher_is_better: bool
    factory: Callable[..., Any]
    description: str = ""
    requires: tuple[str, ...] = field(default_factory=tuple)


METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str, kind: MetricKind, *, higher_is_better: bool, description: str = "", requires: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a metric factory (a class or function) under ``name``."""

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = MetricSpec(name, kind, higher_is_better, factory, description, tuple(requires))
        return factory

    return wrap


def build_metric(name: str, **options: Any) -> Any:
    """The metric registered as ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        MetricUnavailable: its network or package is missing (the reason says which file).
    """
    if name not in METRICS:
        raise UnknownNameError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[name].factory(**options)


def check_image_batch(images: np.ndarray, what: str) -> np.ndarray:
    """``images`` as an (n, h, w, 3) uint8 array, or a ValueError naming ``what``."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{what}: expected (n, h, w, 3) uint8 RGB images, got {images.dtype} {images.shape}")
    return images


def check_pairs(outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output and ground-truth batches of the same shape."""
    outputs, targets = check_image_batch(outputs, "outputs"), check_image_batch(targets, "targets")
    if outputs.shape != targets.shape:
        raise ValueError(f"outputs {outputs.shape} and targets {targets.shape} differ in shape")
    return outputs, targets
