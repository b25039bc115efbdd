"""Training checkpoints: atomic writes, a ``latest`` pointer, keep-last-N retention.

Layout of a run folder::

    run_dir/checkpoints/
        step-00001200.pt                    # one torch.save'd dict per checkpoint
        step-00002000-layout_pretrain-final.pt
        latest                              # the file name of the newest checkpoint
        index.json                          # save order and which files are kept forever

A checkpoint is written to a hidden temporary file, fsynced and renamed, so a process
killed at any moment leaves either the previous set of complete checkpoints or the new
one. The step is read from inside the file, never from its name. Files are loaded with
``weights_only=True``, so a state must hold tensors and plain Python values only (see
:func:`check_weights_only`); RNG states are converted by :func:`capture_rng_state`.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import subprocess
import warnings
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

import talkinghead
from talkinghead.utils.atomic import atomic_path, atomic_write_json, atomic_write_text
from talkinghead.errors import TalkingHeadError

# Version of the checkpoint layout; bump it when the meaning of stored keys changes.
CHECKPOINT_VERSION = 1

LATEST_POINTER = "latest"
INDEX_FILE = "index.json"
_TAG_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


class CheckpointError(TalkingHeadError, RuntimeError):
    """A checkpoint file that cannot be used (truncated, corrupt, unsafe or not a checkpoint)."""


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, plus the git commit when running from a git checkout.

    Returns e.g. ``0.1.0+git.5082c05…`` (``.dirty`` appended when tracked files differ from
    the commit), or just ``0.1.0`` for an installed package.
    """
    version = talkinghead.__version__
    package_dir = Path(talkinghead.__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=package_dir, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    # Only trust the commit when the package really lives inside that checkout.
    if top is None or not package_dir.is_relative_to(Path(top).resolve()):
        return version
    commit = git("rev-parse", "HEAD")
    if not commit:
        return version
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{version}+git.{commit}" + (".dirty" if dirty else "")


def capture_rng_state() -> dict[str, Any]:
    """This process's random number generator states, as tensors and plain values.

    Covers Python's ``random``, numpy's global generator, torch's CPU generator and, when
    CUDA is available, every CUDA device's generator. The result loads with
    ``weights_only=True`` (numpy's state array is converted to a tensor).
    """
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),  # (625,) uint32 values
            "gauss_next": None if py_gauss is None else float(py_gauss),
        },
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),  # (624,) uint32 values
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`capture_rng_state`.

    CUDA states are restored when CUDA is available and the saved state has them; a state
    saved on a machine with a different number of GPUs restores the devices both have.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device)


_PLAIN_TYPES = (str, int, float, bool, bytes, type(None), torch.dtype, torch.device, torch.Size)


def check_weights_only(obj: Any, where: str = "state") -> None:
    """Raise ``TypeError`` when ``obj`` would not load with ``torch.load(weights_only=True)``.

    Allowed: tensors, ``str``/``int``/``float``/``bool``/``bytes``/``None``, torch dtypes,
    devices and sizes, and dicts, lists and tuples of those. The error names the offending
    entry, so a config dataclass or a numpy array is caught when saving rather than when a
    resume fails.
    """
    if isinstance(obj, torch.Tensor) or isinstance(obj, _PLAIN_TYPES):
        return
    if type(obj) in (dict, OrderedDict):  # subclasses such as defaultdict pickle their class
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool, type(None))):
                raise TypeError(f"{where}: key {key!r} of type {type(key).__name__} is not a plain value")
            check_weights_only(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple):  # namedtuples pickle their class
        for i, value in enumerate(obj):
            check_weights_only(value, f"{where}[{i}]")
        return
    hint = ""
    if isinstance(obj, (np.ndarray, np.generic)):
        hint = "; convert numpy values with torch.from_numpy(...) or .item()"
    elif hasattr(obj, "__dataclass_fields__"):
        hint = "; convert dataclasses with dataclasses.asdict(...)"
    raise TypeError(
        f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be loaded with "
        f"weights_only=True; store tensors and plain Python values only{hint}"
    )


def load_checkpoint(path: str | Path, map_location: Any = "cpu", *, mmap: bool = False) -> dict[str, Any]:
    """Load one checkpoint file safely (``weights_only=True``) and check it is a checkpoint.

    Args:
        path: the ``.pt`` file.
        map_location: passed to ``torch.load`` (default: everything on the CPU).
        mmap: map tensor data from the file instead of reading it (cheap inspection).

    Returns:
        The saved state, with ``step`` and ``checkpoint_version`` keys.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, holds pickled code, or
            is not a talkinghead checkpoint; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise CheckpointError(
                f"{path}: refused to load: it contains pickled Python objects (code could run on "
                f"load), and checkpoints are read with weights_only=True. Only load files you trust "
                f"by other means, and re-save them with tensors and plain values only. ({err})"
            ) from err
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({type(err).__name__}: {err}); it is corrupt or "
            "not a PyTorch file. Delete it and resume from an earlier checkpoint."
        ) from err
    except Exception as err:  # truncated zip archives raise RuntimeError, and so on; name the file
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({type(err).__name__}: {err}); it is probably "
            "truncated (an interrupted copy or a full disk). Delete it and resume from an earlier "
            "checkpoint."
        ) from err
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "checkpoint_version" not in state:
        raise CheckpointError(
            f"{path}: is a PyTorch file but not a talkinghead training checkpoint (no 'step' and "
            "'checkpoint_version' entries). Pass a release folder (config.json with one .safetensors file per "
            "network, e.g. RUN_DIR/release or models/demo), a training checkpoint RUN_DIR/checkpoints/*.pt or "
            "a run folder; a single network file is not a whole model"
        )
    if state["checkpoint_version"] > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {state['checkpoint_version']} was written by a newer "
            f"talkinghead ({state.get('code_version', 'unknown version')}); this code reads versions "
            f"up to {CHECKPOINT_VERSION}. Upgrade talkinghead to resume from it."
        )
    return state


class CheckpointManager:
    """Saves and finds the training checkpoints of one run (call ``save`` on one rank only).

    Args:
        run_dir: the run's folder; checkpoints go to ``run_dir/checkpoints``.
        keep: how many ordinary checkpoints to keep; ``keep_forever`` ones are never pruned.
    """

    def __init__(self, run_dir: str | Path, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.run_dir = Path(run_dir)
        self.directory = self.run_dir / "checkpoints"
        self.keep = keep

    # -- writing ---------------------------------------------------------------------------

    def save(self, state: dict[str, Any], step: int, *, keep_forever: bool = False, name: str | None = None) -> Path:
        """Write ``state`` as the checkpoint of ``step``, point ``latest`` at it, prune old ones.

        Args:
            state: tensors and plain values (networks, EMA, optimizers, scaler, stage,
                config as a dict, RNG states); ``step``, ``checkpoint_version`` and
                ``code_version`` entries are added.
            step: the global step this state is at.
            keep_forever: never prune this file (e.g. the end of a stage).
            name: optional tag appended to the file name (``step-00001200-<name>.pt``),
                letters, digits and ``_.-`` only.

        Returns:
            The path of the written checkpoint.
        """
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        if "step" in state and state["step"] != step:
            raise ValueError(f"state['step']={state['step']!r} disagrees with step={step}")
        if name is not None and not _TAG_PATTERN.match(name):
            raise ValueError(f"checkpoint name {name!r}: use letters, digits and '_.-' only")
        payload = {"checkpoint_version": CHECKPOINT_VERSION, "code_version": code_version(), **state, "step": step}
        check_weights_only(payload)

        filename = f"step-{step:08d}" + (f"-{name}" if name else "") + ".pt"
        path = self.directory / filename
        self.directory.mkdir(parents=True, exist_ok=True)
        # Register the file before it exists: a crash after the rename then cannot leave a
        # keep-forever checkpoint that pruning does not know about.
        entries = [e for e in self._read_index() if e["file"] != filename]
        entries.append({"file": filename, "keep_forever": bool(keep_forever)})
        self._write_index(entries)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
        atomic_write_text(self.directory / LATEST_POINTER, filename + "\n")
        self._prune(entries, protect=filename)
        return path

    def _read_index(self) -> list[dict[str, Any]]:
        """Entries of the index in save order; an unreadable index counts as empty.

        Files missing from the index are never pruned, so losing it costs disk space only.
        """
        index = self.directory / INDEX_FILE
        if not index.is_file():
            return []
        try:
            entries = json.loads(index.read_text())["checkpoints"]
            return [{"file": str(e["file"]), "keep_forever": bool(e["keep_forever"])} for e in entries]
        except (ValueError, KeyError, TypeError) as err:
            warnings.warn(
                f"{index}: checkpoint index is unreadable ({type(err).__name__}: {err}); starting a new "
                "one. Checkpoints saved before now will not be pruned automatically; delete the ones "
                "you do not need by hand.",
                stacklevel=3,
            )
            return []

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        atomic_write_json(self.directory / INDEX_FILE, {"checkpoints": entries})

    def _prune(self, entries: list[dict[str, Any]], protect: str) -> None:
        """Delete ordinary checkpoints beyond the last ``keep`` and stray temporary files."""
        entries = [e for e in entries if (self.directory / e["file"]).is_file()]
        ordinary = [e["file"] for e in entries if not e["keep_forever"]]
        doomed = {f for f in ordinary[: max(0, len(ordinary) - self.keep)] if f != protect}
        # Delete first, then drop from the index: a crash in between leaves index entries
        # without files (dropped next time), never files that nothing will prune.
        for filename in doomed:
            (self.directory / filename).unlink(missing_ok=True)
        self._write_index([e for e in entries if e["file"] not in doomed])
        for stray in self.directory.glob(".*.tmp"):
            stray.unlink(missing_ok=True)  # left by a process killed while writing

    # -- reading ---------------------------------------------------------------------------

    def load(self, path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
        """Load a checkpoint file safely; see :func:`load_checkpoint`."""
        return load_checkpoint(path, map_location)

    def checkpoints(self) -> list[Path]:
        """Checkpoint files present in the run, oldest save first (files unknown to the index last)."""
        if not self.directory.is_dir():
            return []
        present = {p.name for p in self.directory.glob("*.pt") if not p.name.startswith(".")}
        ordered = [e["file"] for e in self._read_index() if e["file"] in present]
        ordered += sorted(present - set(ordered))
        return [self.directory / f for f in ordered]

    def _pointer_target(self) -> tuple[Path | None, str]:
        pointer = self.directory / LATEST_POINTER
        if not pointer.is_file():
            return None, f"{pointer} is missing"
        target = pointer.read_text(errors="replace").strip()
        if not target or Path(target).name != target:
            return None, f"{pointer} does not hold a checkpoint file name ({target[:80]!r})"
        if not (self.directory / target).is_file():
            return None, f"{pointer} names {target}, which does not exist"
        return self.directory / target, ""

    def _resolve_latest(self, map_location: Any, mmap: bool) -> tuple[Path, dict[str, Any]] | None:
        """The newest loadable checkpoint and its state; one warning lists every file skipped."""
        target, problem = self._pointer_target()
        # What was skipped, independent of how the files were read (mmap or not changes the
        # error text): the same situation is warned about once per manager.
        situation = [problem]
        if target is not None:
            try:
                return target, load_checkpoint(target, map_location, mmap=mmap)
            except CheckpointError as err:
                problem = f"the latest checkpoint is unusable: {err}"
                situation = [str(target)]
        candidates = [p for p in self.checkpoints() if p != target]
        if target is None and not candidates:
            return None  # a run that has not saved anything yet
        skipped = [problem]
        # Order by the step stored inside each file (cheap with mmap), newest first;
        # later saves win ties.
        found: list[tuple[int, int, Path]] = []
        for order, path in enumerate(candidates):
            try:
                found.append((load_checkpoint(path, "cpu", mmap=True)["step"], order, path))
            except CheckpointError as err:
                skipped.append(f"skipped {err}")
                situation.append(str(path))
        for _, _, path in sorted(found, reverse=True):
            try:
                state = load_checkpoint(path, map_location, mmap=mmap)
            except CheckpointError as err:
                skipped.append(f"skipped {err}")
                situation.append(str(path))
                continue
            self._warn_once("|".join(situation + [str(path)]), "; ".join(skipped) + f"; falling back to {path} (step {state['step']})")
            return path, state
        self._warn_once("|".join(situation + ["none"]), "; ".join(skipped) + f"; no loadable checkpoint left in {self.directory}")
        return None

    def _warn_once(self, situation: str, message: str) -> None:
        """Warn about unusable checkpoints once per manager and situation, however often the
        latest is resolved (a resume resolves it more than once, reading the files in other ways)."""
        warned = self.__dict__.setdefault("_warned", set())
        if situation not in warned:
            warned.add(situation)
            warnings.warn(message, stacklevel=4)

    def latest_path(self) -> Path | None:
        """The checkpoint a resume would load (see :meth:`load_latest`), or None."""
        resolved = self._resolve_latest("cpu", mmap=True)
        return None if resolved is None else resolved[0]

    def nothing_to_resume(self) -> str:
        """Why a resume found nothing to load: no checkpoint at all, or every one unusable (named)."""
        files = self.checkpoints()
        if not files:
            return f"{self.run_dir}: --resume was given but the folder has no checkpoint"
        shown = ", ".join(p.name for p in files[:5]) + (f", ... ({len(files)} in all)" if len(files) > 5 else "")
        return (
            f"{self.run_dir}: --resume was given but every checkpoint in {self.directory} is corrupt or unreadable "
            f"({shown}); restore one from a backup, or start a new run in another --run-dir"
        )

    def load_latest(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """Load the checkpoint named by the ``latest`` pointer.

        When the pointer is missing or dangling, or its file is unreadable, the newest
        loadable checkpoint (by the step stored inside) is loaded instead, with a warning
        for every file skipped. Returns None when the run has no checkpoint.
        """
        resolved = self._resolve_latest(map_location, mmap=False)
        return None if resolved is None else resolved[1]
