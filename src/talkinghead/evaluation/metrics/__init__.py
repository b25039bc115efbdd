"""Evaluation metrics, registered by name (importing this package registers all of them)."""

from talkinghead.evaluation.metrics import (  # noqa: F401
    fid,
    id_sim,
    lpips,
    nmke,
    psnr,
    ssim,
    warp_error,
)
from talkinghead.evaluation.metrics.base import (
    METRICS,
    MetricUnavailable,
    build_metric,
    register_metric,
)

__all__ = ["METRICS", "MetricUnavailable", "build_metric", "register_metric"]
