"""Release weights: ``config.json`` plus one ``<name>.safetensors`` per network.

Like diffusers' ``save_pretrained``: the architecture config travels with the weights and
nothing is pickled. A release folder is written as a whole (into a hidden temporary folder,
then renamed), so a crash never leaves a half-written release at the final path::

    release/
        config.json            # the config dict given to save_release
        release.json           # which networks and extra files the folder holds
        layout_encoder.safetensors
        ...
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from talkinghead.weights.checkpoint import code_version
from talkinghead.utils.modules import unwrap
from talkinghead.utils.atomic import _umask, atomic_directory
from talkinghead.errors import TalkingHeadError

CONFIG_FILE = "config.json"
MANIFEST_FILE = "release.json"
RELEASE_FORMAT = 1
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


class ReleaseError(TalkingHeadError, RuntimeError):
    """A release folder that is incomplete or holds an unreadable file."""


def _tensors_for_safetensors(name: str, module: nn.Module | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A state dict safetensors accepts: CPU, contiguous, and no two tensors sharing memory."""
    state = unwrap(module).state_dict() if isinstance(module, nn.Module) else module
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{name}: entry {key!r} is a {type(value).__name__}, not a tensor; safetensors stores "
                "tensors only (put other settings in the config)"
            )
        # clone() gives every tensor its own contiguous storage: tied weights and views of
        # one buffer are stored twice, which safetensors requires.
        tensors[key] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
    return tensors


def _check_name(kind: str, name: str, reserved: set[str]) -> None:
    if not _NAME_PATTERN.match(name) or name.startswith("."):
        raise ValueError(f"{kind} name {name!r}: use letters, digits and '_.-' only (no leading dot)")
    if name in reserved:
        raise ValueError(f"{kind} name {name!r} is reserved by the release format")


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def save_release(
    directory: str | Path,
    config: Mapping[str, Any],
    modules: Mapping[str, nn.Module | Mapping[str, torch.Tensor]],
    extra_files: Mapping[str, str] | None = None,
    *,
    overwrite: bool = False,
    command: str | None = None,
) -> Path:
    """Write a release folder atomically.

    Args:
        directory: the release folder to create.
        config: JSON-serialisable architecture config (written as ``config.json``).
        modules: network name -> ``nn.Module`` (DDP / ``torch.compile`` wrappers are removed)
            or a tensor state dict; each becomes ``<name>.safetensors``.
        extra_files: file name -> text content written beside them (e.g. a README, the
            resolved training YAML).
        overwrite: replace an existing non-empty folder (otherwise ``FileExistsError``).
        command: the CLI command writing the release (``"export release"``, ``"finetune"``):
            the folder then gets a marker file, and ``overwrite`` replaces only a folder
            that this command wrote and that holds nothing else.

    Returns:
        The release folder.
    """
    directory = Path(directory)
    extra_files = dict(extra_files or {})
    if not modules:
        raise ValueError("save_release: no networks given")
    reserved = {CONFIG_FILE, MANIFEST_FILE}
    for name in modules:
        _check_name("network", name, reserved)
    weight_files = {f"{name}.safetensors" for name in modules}
    for name in extra_files:
        _check_name("extra file", name, reserved | weight_files)
    try:
        config_text = json.dumps(config, indent=2) + "\n"
    except TypeError as err:
        raise TypeError(f"save_release: config is not JSON-serialisable ({err}); pass a plain dict") from err
    tensors = {name: _tensors_for_safetensors(name, module) for name, module in modules.items()}
    manifest = {
        "format": RELEASE_FORMAT,
        "code_version": code_version(),
        "networks": sorted(modules),
        "extra_files": sorted(extra_files),
    }

    from safetensors.torch import save_file

    with atomic_directory(directory, overwrite=overwrite, command=command) as tmp:
        _write_text(tmp / CONFIG_FILE, config_text)
        for name, state in tensors.items():
            save_file(state, str(tmp / f"{name}.safetensors"), metadata={"format": "pt"})
            # safetensors creates private (0600) files; give them the permissions open() would.
            os.chmod(tmp / f"{name}.safetensors", 0o666 & ~_umask())
            with open(tmp / f"{name}.safetensors", "rb") as handle:
                os.fsync(handle.fileno())
        for name, text in extra_files.items():
            _write_text(tmp / name, text)
        _write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")  # last: marks completion
    return directory


# Storage precisions a release may hold; loading converts every network back to float32.
RELEASE_DTYPES = ("float32", "float16", "bfloat16")


def cast_state_dicts(
    states: Mapping[str, Mapping[str, torch.Tensor]], dtype: str
) -> dict[str, dict[str, torch.Tensor]]:
    """Every floating-point tensor of every state dict in ``dtype``; integer buffers unchanged.

    Args:
        states: network name -> state dict.
        dtype: one of :data:`RELEASE_DTYPES` (``float16`` halves the files).

    Raises:
        ValueError: ``dtype`` is not a release precision.
    """
    if dtype not in RELEASE_DTYPES:
        raise ValueError(f"dtype {dtype!r}: a release stores one of {', '.join(RELEASE_DTYPES)}")
    target = getattr(torch, dtype)
    return {
        name: {key: value.to(target) if value.is_floating_point() else value for key, value in state.items()}
        for name, state in states.items()
    }


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ReleaseError(f"{path}: missing from the release folder; the release is incomplete, save it again")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ReleaseError(f"{path}: is not valid JSON ({err}); the release is corrupt, save it again") from err


def load_release(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Read a release folder written by :func:`save_release`.

    Args:
        directory: the release folder.
        device: where the tensors are loaded.

    Returns:
        ``(config, {network name: state dict})``.

    Raises:
        ReleaseError: the folder or one of its files is missing or unreadable (named).
    """
    directory = Path(directory)
    if not directory.is_dir():
        hint = ""
        backups = sorted(directory.parent.glob(f".{directory.name}.*.old")) if directory.parent.is_dir() else []
        if backups:
            hint = f"; an overwrite was interrupted and the previous release is at {backups[-1]}: rename it back"
        raise ReleaseError(f"{directory}: release folder not found{hint}")
    manifest = _read_json(directory / MANIFEST_FILE)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("networks"), list):
        raise ReleaseError(f"{directory / MANIFEST_FILE}: does not list the release's networks; save it again")
    if manifest.get("format", 0) > RELEASE_FORMAT:
        raise ReleaseError(
            f"{directory}: release format {manifest['format']} is newer than this code reads "
            f"({RELEASE_FORMAT}); upgrade talkinghead"
        )
    config = _read_json(directory / CONFIG_FILE)
    if not isinstance(config, dict):
        raise ReleaseError(f"{directory / CONFIG_FILE}: holds a {type(config).__name__}, expected a JSON object")

    from safetensors.torch import load_file

    states = {}
    for name in manifest["networks"]:
        path = directory / f"{name}.safetensors"
        if not path.is_file():
            raise ReleaseError(f"{path}: missing from the release folder; the release is incomplete, save it again")
        try:
            states[name] = load_file(str(path), device=str(device))
        except Exception as err:  # safetensors raises its own error types; name the file
            raise ReleaseError(
                f"{path}: cannot be read as safetensors ({type(err).__name__}: {err}); the file is "
                "truncated or corrupt, copy or save the release again"
            ) from err
    return config, states
