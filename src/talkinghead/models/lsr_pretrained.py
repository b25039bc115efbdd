"""Load trained LSR weights from a release folder, a training checkpoint or a run folder.

* release folder (``config.json`` + one safetensors file per network, written at the end
  of ``talkinghead train`` and by ``talkinghead export release``);
* training checkpoint (``.pt``, loaded with ``weights_only=True``): the EMA generator
  weights by default, the raw ones with ``use_ema=False``;
* run folder: its latest checkpoint.

Every failure names the file and what to do; nothing here executes pickled code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from talkinghead.config import ConfigError, from_dict
from talkinghead.config.lsr import LSRModelConfig
from talkinghead.config.prepare import PrepareConfig
from talkinghead.data.dataset_format import preparation_settings
from talkinghead.models.lsr import METHOD, build_networks
from talkinghead.weights.registry import describe_mismatch


class PretrainedError(RuntimeError):
    """Weights that cannot be used for this method or architecture."""


@dataclass
class PretrainedLSR:
    """Weights and architecture of a trained LSR model.

    Attributes:
        config: the architecture.
        state_dicts: network name -> state dict (the networks present in the source).
        source: the file or folder they came from.
        kind: ``release`` or ``checkpoint``.
        info: other metadata (step, stage, ...).
    """

    config: LSRModelConfig
    state_dicts: dict[str, dict[str, Any]]
    source: Path
    kind: str
    info: dict[str, Any] = field(default_factory=dict)

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
            raise PretrainedError(f"{self.source}: has no weights for {missing} (it holds {sorted(self.state_dicts)})")
        for name, net in networks.items():
            try:
                net.load_state_dict(self.state_dicts[name], strict=True)
            except RuntimeError as err:
                # PyTorch lists every key (dozens of lines); a few keys and the counts say enough.
                summary = describe_mismatch(net.state_dict(), self.state_dicts[name]) or str(err).splitlines()[0]
                raise PretrainedError(
                    f"{self.source}: the {name} weights do not fit the architecture in its config ({summary}); "
                    "the file is damaged or was written by another version"
                ) from err
        return networks

    def build(self, names: list[str] | tuple[str, ...]) -> dict[str, nn.Module]:
        """The named networks with these weights (strict: every key must match)."""
        networks = build_networks(self.config)
        return self.load_into({name: networks[name] for name in names})


def _model_config(data: Any, source: Path) -> LSRModelConfig:
    if not isinstance(data, dict):
        raise PretrainedError(f"{source}: has no model configuration")
    try:
        return from_dict(LSRModelConfig, data, where=f"{source} model")
    except ConfigError as err:
        raise PretrainedError(f"{source}: its model configuration does not fit this version: {err}") from err


def _check_method(method: Any, source: Path) -> None:
    if method != METHOD:
        raise PretrainedError(f"{source}: holds a {method!r} model, an {METHOD!r} model is needed here")


def load_lsr_weights(path: str | Path, *, use_ema: bool = True) -> PretrainedLSR:
    """Read LSR weights from a release folder, a checkpoint file or a run folder."""
    from talkinghead.training.checkpoint import CheckpointManager, load_checkpoint
    from talkinghead.training.release import CONFIG_FILE, load_release

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file or folder")
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        config, states = load_release(path)
        _check_method(config.get("method"), path)
        info = {k: v for k, v in config.items() if k != "model"}
        return PretrainedLSR(_model_config(config.get("model"), path), dict(states), path, "release", info)
    if path.is_dir():
        manager = CheckpointManager(path)
        latest = manager.latest_path()
        if latest is None and manager.checkpoints():
            raise PretrainedError(
                f"{path}: none of its {len(manager.checkpoints())} checkpoint file(s) in {manager.directory} can be "
                "read (corrupt or truncated, see the warning above); restore one from a backup, or pass the run's "
                "release folder"
            )
        if latest is None:
            raise PretrainedError(
                f"{path}: is neither a release folder (no {CONFIG_FILE}) nor a run folder with checkpoints"
            )
        path = latest
    state = load_checkpoint(path)
    _check_method(state.get("method"), path)
    config = _model_config(state.get("config", {}).get("model"), path)
    states = dict(state["networks"])
    if use_ema:
        for name, ema in state.get("ema", {}).items():
            states[name] = ema["module"] if isinstance(ema, dict) and "module" in ema else ema
    info = {k: state.get(k) for k in ("stage", "stage_step", "global_step", "code_version")}
    info["weights"] = "ema" if use_ema and state.get("ema") else "raw"
    data_root = (state.get("config", {}).get("data") or {}).get("root")
    prepare = preparation_settings(data_root) if data_root else None
    if prepare is not None:
        info["prepare"] = prepare
    return PretrainedLSR(config, states, path, "checkpoint", info)
