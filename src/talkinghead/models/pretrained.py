"""Load any trained model: ``load_pretrained(path)`` returns the right method's networks.

    pretrained = load_pretrained("models/demo")      # release, checkpoint or run folder
    model = pretrained.inference_model()             # that method's InferenceModel
    nets = pretrained.build(["discriminator"])       # any of its networks, with weights

The method comes from the files themselves (every checkpoint and release records it); a
file of a method this version does not know is refused with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from talkinghead.config import ConfigError, from_dict
from talkinghead.config.prepare import PrepareConfig
from talkinghead.models.inference_model import InferenceModel
from talkinghead.models.registry import MethodSpec, get_method, registered_methods
from talkinghead.weights.registry import describe_mismatch
from talkinghead.weights.trained import PretrainedError, read_trained
from talkinghead.utils.bundled import bundled_model_name

SUBJECT = "subject"  # the person state a fine-tuned release stores beside its networks


@dataclass
class PretrainedModel:
    """Weights and architecture of a trained model of any registered method.

    Attributes:
        spec: the method.
        config: its architecture config.
        state_dicts: network name -> state dict (the networks present in the source).
        source: the file or folder they came from.
        kind: ``release`` or ``checkpoint``.
        info: other metadata (step, stage, data preparation settings, ...).
    """

    spec: MethodSpec
    config: Any
    state_dicts: dict[str, dict[str, Any]]
    source: Path
    kind: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The registered method name."""
        return self.spec.name

    def describe(self) -> str:
        """Which model this is, for summary lines and menus: ``demo (MetaPortrait, 128 px)``."""
        name = bundled_model_name(self.source) or str(self.source)
        return f"{name} ({self.spec.label}, {self.config.image_size} px)"

    def prepare_config(self) -> PrepareConfig:
        """The detector and crop settings of the model's training data.

        Models exported before these were recorded get the defaults of ``talkinghead prepare``.
        """
        settings = self.info.get("prepare")
        if not isinstance(settings, dict):
            return PrepareConfig()
        try:
            return from_dict(PrepareConfig, {k: v for k, v in settings.items() if k != "kind"}, where=f"{self.source} prepare")
        except ConfigError as err:
            raise PretrainedError(f"{self.source}: its data preparation settings do not fit this version: {err}") from err

    def load_into(self, networks: dict[str, nn.Module]) -> dict[str, nn.Module]:
        """Load these weights into already built networks, by name (strict: every key must match)."""
        missing = [n for n in networks if n not in self.state_dicts]
        if missing:
            raise PretrainedError(
                f"{self.source}: has no weights for {missing} (it holds {sorted(self.state_dicts)}); "
                "give a release or checkpoint that includes them"
            )
        for name, net in networks.items():
            problem = describe_mismatch(net.state_dict(), self.state_dicts[name])
            if problem:
                raise PretrainedError(
                    f"{self.source}: the {name} weights do not fit the architecture in its config ({problem}); "
                    "the file is damaged or was written by another version"
                )
            net.load_state_dict(self.state_dicts[name], strict=True)
        return networks

    def build(self, names: list[str] | tuple[str, ...]) -> dict[str, nn.Module]:
        """The named networks with these weights (strict: every key must match)."""
        networks = self.spec.build_networks(self.config)
        return self.load_into({name: networks[name] for name in names})

    def inference_model(self) -> InferenceModel:
        """The method's inference model with these weights, in eval mode on the CPU."""
        model = self.spec.inference_model(self.config)
        self.load_into({name: getattr(model, name) for name in model.network_names})
        return model.eval()

    def person_state(self) -> dict[str, torch.Tensor] | None:
        """The person state stored by subject fine-tuning (``talkinghead finetune``), or None.

        Each tensor is reshaped to the method's declared per-person shape.
        """
        stored = self.state_dicts.get(SUBJECT)
        if not stored:
            return None
        spec = self.spec.inference_model.state_spec(self.config)
        if set(spec) - set(stored):
            raise PretrainedError(
                f"{self.source}: its {SUBJECT} state holds {sorted(stored)}, the {self.method} model needs "
                f"{sorted(spec)}; fine-tune the subject again"
            )
        return {name: stored[name].float().reshape(spec[name].shape) for name in spec}


def load_pretrained(path: str | Path, *, use_ema: bool = True, method: str | None = None) -> PretrainedModel:
    """Read a trained model of any registered method from a release, checkpoint or run folder.

    Args:
        path: the release folder, checkpoint file or run folder.
        use_ema: for a checkpoint, the EMA weights of the networks that have them.
        method: refuse weights of any other method (None: accept every registered one).

    Raises:
        InputNotFoundError, PretrainedError, UnknownMethodError, ReleaseError,
        CheckpointError: the message names the file and what to do.
    """
    files = read_trained(path, use_ema=use_ema)
    if files.method is None and "kind" in files.info:  # e.g. the super-resolution release (kind: upscale)
        raise PretrainedError(
            f"{files.source}: holds a model of kind {files.info['kind']!r}, not a talking-head model; it is used by "
            f"`talkinghead {files.info['kind']}`. Give a release of one of: {', '.join(registered_methods())}"
        )
    spec = get_method(files.method, where=str(files.source))
    if method is not None and spec.name != method:
        raise PretrainedError(f"{files.source}: holds a {spec.name!r} model, a {method!r} model is needed here")
    if not isinstance(files.model, dict):
        raise PretrainedError(f"{files.source}: has no model configuration; the file is incomplete, save it again")
    try:
        config = from_dict(spec.model_config, files.model, where=f"{files.source} model")
    except ConfigError as err:
        raise PretrainedError(f"{files.source}: its model configuration does not fit this version: {err}") from err
    return PretrainedModel(spec, config, files.state_dicts, files.source, files.kind, files.info)
