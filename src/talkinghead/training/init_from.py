"""``trainer.init_from``: start a run's networks from a release, a checkpoint or a run folder.

A stage normally starts from the previous stage's weights; a run whose first stage builds
on a model trained elsewhere (a meta stage on the shipped ``models/demo``, say) names that
model instead:

    talkinghead train configs/metaportrait/meta_demo.yaml data.root=... trainer.init_from=models/demo

The weights are read without executing pickled code (safetensors for a release,
``weights_only=True`` for a checkpoint; a checkpoint's EMA weights where it has them, as a
release holds them), every tensor must have the shape the run's network expects, and the
EMA copies start from the same weights. A network the source does not hold keeps its
random initialisation (logged).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from talkinghead.config import flatten, to_dict
from talkinghead.errors import TalkingHeadError
from talkinghead.models.pretrained import load_pretrained
from talkinghead.training.distributed import unwrap
from talkinghead.training.recipe import TrainingSetupError
from talkinghead.training.trainer import Trainer

SHOWN = 5  # mismatching tensors listed per network


def shape_problems(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> list[str]:
    """How ``given`` does not fit a network whose state dict is ``expected`` (empty when it fits).

    Each line names a tensor: missing, unexpected, or its shape in the file against the network's.
    """
    lines = []
    for key in sorted(set(expected) - set(given)):
        if not key.endswith("num_batches_tracked"):
            lines.append(f"{key}: missing from the file")
    lines += [f"{key}: not in this network" for key in sorted(set(given) - set(expected))]
    for key in sorted(set(expected) & set(given)):
        a, b = tuple(given[key].shape), tuple(expected[key].shape)
        if a != b:
            lines.append(f"{key}: file {list(a)}, this run {list(b)}")
    return lines


def initialise_from(trainer: Trainer, config: Any, path: str) -> str:
    """Load the weights at ``path`` into every network of ``trainer`` (and its EMA copies).

    Args:
        trainer: the run's trainer, its networks built from ``config.model``.
        config: the run config (method and architecture).
        path: a release folder, checkpoint file or run folder of the same method.

    Returns:
        A line for the log: what was loaded from where.

    Raises:
        TrainingSetupError: another method, or tensors whose shapes do not fit (the message
            lists them, with the architecture options that differ, and the fix).
    """
    where = f"trainer.init_from={path}"
    try:
        pretrained = load_pretrained(path, method=config.method)
    except TalkingHeadError as err:
        raise TrainingSetupError(f"{where}: {err}") from err
    states = pretrained.state_dicts
    problems = []
    for name, net in trainer.networks.items():
        if name in states:
            lines = shape_problems(unwrap(net).state_dict(), states[name])
            if lines:
                more = f"\n    ... and {len(lines) - SHOWN} more" if len(lines) > SHOWN else ""
                problems.append(f"  {name}:\n" + "\n".join(f"    {line}" for line in lines[:SHOWN]) + more)
    saved, current = flatten(to_dict(pretrained.config)), flatten(to_dict(config.model))
    differing = [f"  model.{k}: {pretrained.source} {saved.get(k)!r}, this run {current.get(k)!r}"
                 for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if problems:
        raise TrainingSetupError(
            f"{where}: the weights in {pretrained.source} do not fit this run's networks:\n" + "\n".join(problems)
            + ("\nThe architectures differ in:\n" + "\n".join(differing) if differing else "")
            + f"\nSet the run's model options to those of {pretrained.source} (its config.json or config.yaml), "
            "or start from a model trained with this run's architecture"
        )
    loaded, kept = [], []
    with torch.no_grad():
        for name, net in trainer.networks.items():
            if name not in states:
                kept.append(name)
                continue
            unwrap(net).load_state_dict(states[name], strict=True)
            if name in trainer.ema:
                trainer.ema[name].module.load_state_dict(states[name], strict=True)
            loaded.append(name)
    if not loaded:
        raise TrainingSetupError(f"{where}: {pretrained.source} holds none of this run's networks "
                                 f"({', '.join(trainer.networks)}); give a release or checkpoint of this model")
    message = f"networks initialised from {pretrained.source} ({pretrained.kind}): {', '.join(loaded)}"
    if kept:
        message += f"; not in it, randomly initialised: {', '.join(kept)}"
    if differing:
        message += "; note: its architecture options differ without changing shapes:\n" + "\n".join(differing)
    return message
