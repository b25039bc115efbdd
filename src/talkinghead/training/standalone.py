"""Training programs that are not talking-head methods, chosen by their config's ``kind``.

``talkinghead train CONFIG`` trains a method through its recipe (:mod:`talkinghead.training.run`)
when the config names a ``method``. A module that only post-processes a method's output (the
temporal super-resolution of ``kind: upscale``) has no recipe: it registers one function here
under its config kind, and the command calls it. Shared code names no kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StandaloneTrainer:
    """What ``talkinghead train`` needs from a standalone training program.

    Attributes:
        train: ``train(config, run_dir, *, resume, max_steps) -> {name: number}`` (last values).
        validate: ``validate(config) -> str``, checks config and data before any compute and
            returns a one-line plan (for ``--dry-run``).
    """

    train: Callable[..., dict[str, float]]
    validate: Callable[[Any], str]


STANDALONE_TRAINERS: dict[str, StandaloneTrainer] = {}


def register_standalone_trainer(kind: str, trainer: StandaloneTrainer) -> None:
    """Make ``talkinghead train`` run ``trainer`` for configs of ``kind``."""
    STANDALONE_TRAINERS[kind] = trainer


def standalone_trainer(config: Any) -> StandaloneTrainer | None:
    """The standalone trainer of ``config``'s kind, or None for a method's training config."""
    return STANDALONE_TRAINERS.get(getattr(config, "config_kind", ""))


def release_dir(run_dir: str | Path) -> Path:
    """Where a standalone run writes its release weights."""
    return Path(run_dir) / "release"
