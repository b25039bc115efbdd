"""Options of ``talkinghead evaluate``: what the FSTH / LSR protocol measures and how."""

from __future__ import annotations

from dataclasses import dataclass, field

from talkinghead.evaluation.face_embedding import DEFAULT_ID_NETWORK
from talkinghead.evaluation.metrics import METRICS

DEFAULT_METRICS = ("psnr", "ssim", "lpips", "id_sim", "nmke", "fid", "warp_error")


@dataclass
class EvaluateOptions:
    """What ``talkinghead evaluate`` measures.

    Args:
        ks: numbers of input shots (LSR: 1, 4, 8, 32).
        finetune_steps: also evaluate subject fine-tuned models (N steps on the K shots; 0 = off).
        cross: cross-identity reenactment instead of self-reenactment.
        split: dataset split to evaluate (None = every clip).
        holdout_fraction: hold-out tail of clips without stored frame roles.
        max_videos: evaluate only the first N videos.
        targets_per_video: hold-out frames evaluated per video, evenly spaced (0 = all).
        metrics: metric names; those whose networks are missing are skipped and reported.
        id_network: identity network of ID-SIM: ``dlib-resnet`` (offline, batched), ``dlib`` (dlib's
            C++), ``vggface`` or ``arcface``.
        landmark_backend: detector of NMKE.
        seed: seed of the shot selection.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: frames synthesised per call.
        workers: threads that load the next videos while one is evaluated.
        qualitative_videos: videos whose first hold-out frame goes into the qualitative grid.
    """

    ks: list[int] = field(default_factory=lambda: [1, 4])
    finetune_steps: int = 0
    cross: bool = False
    split: str | None = "test"
    holdout_fraction: float = 0.5
    max_videos: int | None = None
    targets_per_video: int = 8
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    id_network: str = DEFAULT_ID_NETWORK
    landmark_backend: str = "mediapipe"
    seed: int = 0
    device: str = "auto"
    batch_size: int = 8
    workers: int = 2
    qualitative_videos: int = 4

    def __post_init__(self):
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive numbers of shots, got {self.ks}")
        self.ks = sorted(set(int(k) for k in self.ks))
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
        if self.finetune_steps < 0 or self.targets_per_video < 0 or self.batch_size < 1:
            raise ValueError("finetune_steps and targets_per_video must be >= 0 and batch_size >= 1")
