"""Training recipes: how each method trains, registered by method name.

A recipe lists the method's stages as plain functions (``stage config -> StagePlan``
for the one :class:`~talkinghead.training.trainer.Trainer`) and its subject fine-tuning.
The run driver (:mod:`talkinghead.training.run`) and the generic fine-tuning
(:mod:`talkinghead.training.finetune`) read the method from the config or the weights and
call the recipe; they know nothing else of any method.

A method's run config provides ``method``, ``data`` (:class:`DataConfig`), ``model``,
``stages`` (a list of :class:`StageSchedule` subclasses, each with a ``name`` the recipe
knows) and ``trainer`` (:class:`TrainerConfig`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from talkinghead.errors import TalkingHeadError
from talkinghead.training.trainer import StagePlan, Trainer

# (trainer, run config, stage config, stage index, the run's shared resources) -> StagePlan
StageFunction = Callable[[Trainer, Any, Any, int, Any], StagePlan]


class TrainingSetupError(TalkingHeadError, ValueError):
    """A run that cannot start: bad data, a mismatched checkpoint, missing weights."""


@dataclass
class FinetunedNetworks:
    """What a recipe's fine-tuning returns (nothing is written yet).

    Attributes:
        networks: the tuned networks (and the untouched ones the release keeps), by name.
        person_state: the subject's state for the inference model, one person, no batch dimension.
        seconds_per_step: mean wall time of one step.
        before: reconstruction of the subject frames before tuning (``l1``, ``psnr``).
        after: the same after tuning.
        extra_files: text files to store in the release (e.g. the tuning's metrics).
    """

    networks: dict[str, torch.nn.Module]
    person_state: dict[str, torch.Tensor]
    seconds_per_step: float
    before: dict[str, float]
    after: dict[str, float]
    extra_files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingRecipe:
    """How one method trains.

    Args:
        method: the registered method name (also the run config's ``kind``).
        stages: stage name -> stage function, in the paper's order.
        resources: ``run config -> object`` built once per run and handed to every stage
            (pretrained loss networks, say); its ``message`` attribute, when set, is logged.
        requires_segmentation: ``stage config -> bool``: the stage reads oracle segmentation maps.
        finetune_config_kind: the config kind of ``talkinghead finetune`` for this method.
        finetune: ``(PretrainedModel, SubjectFrames, finetune config) -> FinetunedNetworks``.
    """

    method: str
    stages: Mapping[str, StageFunction]
    resources: Callable[[Any], Any]
    requires_segmentation: Callable[[Any], bool]
    finetune_config_kind: str
    finetune: Callable[[Any, Any, Any], FinetunedNetworks]


RECIPES: dict[str, TrainingRecipe] = {}


def register_recipe(recipe: TrainingRecipe) -> TrainingRecipe:
    """Add a method's recipe (its module calls this once, at import)."""
    if recipe.method in RECIPES and RECIPES[recipe.method] != recipe:
        raise ValueError(f"a training recipe for {recipe.method!r} is registered twice")
    RECIPES[recipe.method] = recipe
    return recipe


def get_recipe(method: Any, *, where: str = "") -> TrainingRecipe:
    """The recipe of ``method``; an unknown one is an error naming ``where`` it came from."""
    recipe = RECIPES.get(method) if isinstance(method, str) else None
    if recipe is None:
        prefix = f"{where}: " if where else ""
        raise TrainingSetupError(
            f"{prefix}method {method!r} has no training recipe (known: {', '.join(sorted(RECIPES))})"
        )
    return recipe
