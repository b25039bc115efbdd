"""Training: the one trainer, stage plumbing, the run driver, and each method's recipe.

Checkpoint and release files are read and written by :mod:`talkinghead.weights`.
Importing this package registers every built-in method's training recipe
(:mod:`talkinghead.training.recipe`).
"""

from talkinghead.training import lsr_recipe  # noqa: F401  (registers LSR's recipe)
from talkinghead.training import metaportrait_recipe  # noqa: F401  (registers MetaPortrait's recipe)
from talkinghead.training import fsth_recipe  # noqa: F401  (registers FSTH's recipe)
from talkinghead.training import upscale_trainer  # noqa: F401  (registers the kind: upscale trainer)
from talkinghead.training.distributed import DistributedContext, seed_everything
from talkinghead.training.ema import ExponentialMovingAverage
from talkinghead.training.image_grid import colorize_layout, make_grid
from talkinghead.training.logger import TrainingLogger
from talkinghead.training.schedule import lr_factor, set_lr
from talkinghead.utils.modules import unwrap

__all__ = [
    "DistributedContext",
    "ExponentialMovingAverage",
    "TrainingLogger",
    "colorize_layout",
    "lr_factor",
    "make_grid",
    "seed_everything",
    "set_lr",
    "unwrap",
]
