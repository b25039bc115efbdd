"""Read a trained model's files, whatever the method: a release folder, a checkpoint or a run folder.

* release folder (``config.json`` + one safetensors file per network, written at the end
  of ``talkinghead train`` and by ``talkinghead export release``);
* training checkpoint (``.pt``, loaded with ``weights_only=True``): the EMA weights of the
  networks that have one by default, the raw ones with ``use_ema=False``;
* run folder: its latest checkpoint.

This layer knows no method: it returns the method's name, its architecture as a plain
dict and the state dicts; :func:`talkinghead.models.pretrained.load_pretrained` turns
them into the method's networks. Nothing here executes pickled code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkinghead.config.prepare import preparation_settings
from talkinghead.errors import InputNotFoundError, TalkingHeadError
from talkinghead.utils.bundled import resolve_model
from talkinghead.weights.checkpoint import CheckpointManager, load_checkpoint
from talkinghead.weights.release import CONFIG_FILE, load_release


class PretrainedError(TalkingHeadError, RuntimeError):
    """Weights that cannot be used for this method or architecture."""


@dataclass
class TrainedFiles:
    """What a trained model's files hold, before any network is built.

    Attributes:
        method: the registered method name stored with the weights.
        model: the architecture config as a plain dict.
        state_dicts: network name -> state dict (the networks present in the source;
            a fine-tuned release also holds ``subject``, the person's state).
        source: the file or folder they came from.
        kind: ``release`` or ``checkpoint``.
        info: other metadata (step, stage, the data preparation settings, ...).
    """

    method: Any
    model: Any
    state_dicts: dict[str, dict[str, Any]]
    source: Path
    kind: str
    info: dict[str, Any] = field(default_factory=dict)


def read_trained(path: str | Path, *, use_ema: bool = True) -> TrainedFiles:
    """Read the weights in a release folder, a checkpoint file or a run folder.

    Raises:
        InputNotFoundError: nothing exists at ``path``.
        PretrainedError: a folder that is neither a release nor a run folder with checkpoints.
        ReleaseError, CheckpointError: a damaged file (named).
    """
    path = resolve_model(path)  # a bundled model by name ("demo"), from the checkout or the wheel
    if not path.exists():
        raise InputNotFoundError(
            f"{path}: no such checkpoint file or folder; give a release folder (config.json + .safetensors), "
            "a training checkpoint (.pt) or a run folder"
        )
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        config, states = load_release(path)
        info = {k: v for k, v in config.items() if k not in ("model", "method")}
        return TrainedFiles(config.get("method"), config.get("model"), dict(states), path, "release", info)
    if path.is_file() and path.suffix == ".safetensors":
        raise PretrainedError(
            f"{path}: is one network's weights file; give the release folder that holds it "
            f"({path.parent}, with {CONFIG_FILE}) instead"
        )
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
                f"{path}: is neither a release folder (no {CONFIG_FILE}) nor a run folder with a loadable "
                "checkpoint; give a release folder, a checkpoint file or a run folder"
            )
        path = latest
    state = load_checkpoint(path)
    config = state.get("config", {}) if isinstance(state.get("config"), dict) else {}
    states = dict(state["networks"])
    if use_ema:
        for name, ema in state.get("ema", {}).items():
            states[name] = ema["module"] if isinstance(ema, dict) and "module" in ema else ema
    info = {k: state.get(k) for k in ("stage", "stage_step", "global_step", "code_version")}
    info["weights"] = "ema" if use_ema and state.get("ema") else "raw"
    data_root = (config.get("data") or {}).get("root")
    prepare = preparation_settings(data_root) if data_root else None
    if prepare is not None:
        info["prepare"] = prepare
    return TrainedFiles(state.get("method"), config.get("model"), states, path, "checkpoint", info)
