"""The metrics of one evaluation: those that can run here, the skipped ones with reasons,
and ground-truth values (embeddings, landmarks, FID features) cached per video."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from talkinghead.evaluation.metrics import METRICS, MetricUnavailable, build_metric
from talkinghead.evaluation.metrics.nmke import normalized_mean_error
from talkinghead.evaluation.options import DEFAULT_METRICS, EvaluateOptions
from talkinghead.utils.device import resolve_device

log = logging.getLogger(__name__)


class MetricSuite:
    """The metrics that can run here, with ground-truth values cached per video."""

    def __init__(self, options: EvaluateOptions):
        self.frame: dict[str, Any] = {}
        self.video: dict[str, Any] = {}
        self.fid = None
        self.skipped: dict[str, str] = {}
        device = str(resolve_device(options.device))
        for name in options.metrics:
            spec = METRICS[name]
            kwargs: dict[str, Any] = {}
            if name in ("lpips", "fid"):
                kwargs["device"] = device
            if name == "id_sim":
                kwargs["network"] = options.id_network
                if options.id_network != "dlib":  # the PyTorch networks run on the evaluation device
                    kwargs["device"] = device
            if name == "nmke":
                kwargs["backend"] = options.landmark_backend
            try:
                metric = build_metric(name, **kwargs)
            except MetricUnavailable as err:
                self.skipped[name] = err.reason
                log.warning("metric %s skipped: %s", name, err.reason)
                continue
            if spec.kind == "frame":
                self.frame[name] = metric
            elif spec.kind == "video":
                self.video[name] = metric
            else:
                self.fid = metric
        self._gt_cache: dict[tuple[str, str], np.ndarray] = {}

    def names(self) -> list[str]:
        order = list(DEFAULT_METRICS)
        ran = set(self.frame) | set(self.video) | ({"fid"} if self.fid is not None else set())
        return [n for n in order if n in ran]

    def networks(self) -> dict[str, str]:
        out = {}
        for name, metric in {**self.frame, **self.video, **({"fid": self.fid} if self.fid else {})}.items():
            out[name] = getattr(metric, "description", None) or METRICS[name].description
        return out

    def _gt(self, kind: str, video: str, images: np.ndarray, compute) -> np.ndarray:
        key = (kind, video)
        if key not in self._gt_cache:
            self._gt_cache = {k: v for k, v in self._gt_cache.items() if k[1] == video}  # one video at a time
            self._gt_cache[key] = compute(images)
        return self._gt_cache[key]

    def per_frame(self, video: str, outputs: np.ndarray, targets: np.ndarray, *, cross: bool = False,
                  reference_embeddings: np.ndarray | None = None, asked68: np.ndarray | None = None) -> dict:
        """Per-frame values of every frame metric (cross mode: ID-SIM to the source, NMKE to the asked pose)."""
        values: dict[str, np.ndarray] = {}
        for name, metric in self.frame.items():
            if cross:
                if name == "id_sim":
                    values[name] = metric.similarity(metric.embed(outputs), reference_embeddings)
                elif name == "nmke":
                    values[name] = normalized_mean_error(metric.landmarks(outputs), asked68)
                continue
            if name == "id_sim":
                gt = self._gt("id_sim", video, targets, metric.embed)
                values[name] = metric(outputs, target_embeddings=gt)
            elif name == "nmke":
                gt = self._gt("nmke", video, targets, metric.landmarks)
                values[name] = metric(outputs, target_landmarks=gt)
            else:
                values[name] = metric(outputs, targets)
        return values

    def fid_features(self, video: str, outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        extractor = self.fid.extractor
        return extractor(outputs).astype(np.float32), self._gt("fid", video, targets, extractor).astype(np.float32)

    def close(self) -> None:
        for metric in [*self.frame.values(), *self.video.values()]:
            if hasattr(metric, "close"):
                metric.close()
