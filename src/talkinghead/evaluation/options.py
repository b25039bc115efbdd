"""Options of ``talkinghead evaluate``: what the FSTH / LSR protocol measures and how."""

from __future__ import annotations

from dataclasses import dataclass, field

from talkinghead.evaluation.face_embedding import DEFAULT_ID_NETWORK
from talkinghead.evaluation.metrics import METRICS
from talkinghead.errors import InvalidInputError

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
        output_size: side of the frames compared with the ground truth (None: the model's size).
        mouth: let a model's mouth generator paint the opening of the mouth (False: ``--no-mouth``).
            A method that warps its source at the output size (MetaPortrait) renders there
            from the shots' own pixels; other methods' frames are resized to it.
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
    output_size: int | None = None
    mouth: bool = True

    def __post_init__(self):
        if not self.ks or min(self.ks) < 1:
            raise InvalidInputError(f"ks must be positive numbers of shots, got {self.ks}")
        self.ks = sorted(set(int(k) for k in self.ks))
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise InvalidInputError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
        if self.output_size is not None and self.output_size < 16:
            raise InvalidInputError(f"output_size must be at least 16 px, got {self.output_size}")
        if self.finetune_steps < 0 or self.targets_per_video < 0 or self.batch_size < 1:
            raise InvalidInputError("finetune_steps and targets_per_video must be >= 0 and batch_size >= 1")
