"""The method registry: method name -> architecture config, networks and inference model.

A method registers one :class:`MethodSpec` when its model module is imported
(``talkinghead.models`` imports every built-in method). Checkpoints and release
``config.json`` files carry the method name, so :func:`get_method` finds how to rebuild
any saved model. The training side (stages, fine-tuning) registers separately in
:mod:`talkinghead.training.recipe`, one layer up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from talkinghead.errors import TalkingHeadError
from talkinghead.models.inference_model import InferenceModel


class UnknownMethodError(TalkingHeadError, ValueError):
    """A config, checkpoint or release names a method this version does not have."""


@dataclass(frozen=True)
class MethodSpec:
    """What the shared code needs to know of a method.

    Args:
        name: the registered name (``lsr``), stored in configs, checkpoints and releases.
        label: how reports and tables show it (``LSR``).
        model_config: the architecture dataclass (rebuilt from a checkpoint's ``model``).
        build_networks: ``config -> {name: network}``, every network the method trains.
        inference_model: the :class:`InferenceModel` subclass built from ``model_config``.
        inference_networks: the networks the inference model may hold (the trainer keeps an
            EMA of them, releases store them, ``--generators-only`` keeps only them); an
            optional one (MetaPortrait's mouth generator) is absent when its config does not
            enable it.
    """

    name: str
    label: str
    model_config: type
    build_networks: Callable[[Any], dict[str, nn.Module]]
    inference_model: type[InferenceModel]
    inference_networks: tuple[str, ...]


METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method (its module calls this once, at import)."""
    if spec.name in METHODS and METHODS[spec.name] != spec:
        raise ValueError(f"method {spec.name!r} is registered twice")
    if spec.inference_model.method != spec.name:
        raise ValueError(f"{spec.inference_model.__name__}.method is {spec.inference_model.method!r}, not {spec.name!r}")
    METHODS[spec.name] = spec
    return spec


def registered_methods() -> list[str]:
    """Names of every registered method."""
    return sorted(METHODS)


def get_method(name: Any, *, where: str = "") -> MethodSpec:
    """The spec of method ``name``; an unknown name is an error naming ``where`` it came from."""
    spec = METHODS.get(name) if isinstance(name, str) else None
    if spec is None:
        prefix = f"{where}: " if where else ""
        raise UnknownMethodError(
            f"{prefix}holds a model of method {name!r}, which this version of talkinghead does not know "
            f"(known methods: {', '.join(registered_methods())}); use a talkinghead version that has it"
        )
    return spec
