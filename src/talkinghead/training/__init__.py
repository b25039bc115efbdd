"""Reusable training infrastructure: checkpoints, releases, EMA, LR schedule, processes, logs."""

from talkinghead.training.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    check_weights_only,
    code_version,
    load_checkpoint,
    restore_rng_state,
)
from talkinghead.training.distributed import DistributedContext, seed_everything, unwrap
from talkinghead.training.ema import ExponentialMovingAverage
from talkinghead.training.image_grid import colorize_layout, make_grid
from talkinghead.training.logger import TrainingLogger
from talkinghead.training.release import ReleaseError, load_release, save_release
from talkinghead.training.schedule import lr_factor, set_lr

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "CheckpointManager",
    "DistributedContext",
    "ExponentialMovingAverage",
    "ReleaseError",
    "TrainingLogger",
    "capture_rng_state",
    "check_weights_only",
    "code_version",
    "colorize_layout",
    "load_checkpoint",
    "load_release",
    "lr_factor",
    "make_grid",
    "restore_rng_state",
    "save_release",
    "seed_everything",
    "set_lr",
    "unwrap",
]
