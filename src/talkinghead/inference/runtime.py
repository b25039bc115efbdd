"""How a method's per-frame synthesis runs: eager PyTorch, ``torch.compile``, onnxruntime, or ``auto``.

Every runtime goes through the method contract only (``model(landmarks, state)`` and the
ONNX export of :mod:`talkinghead.inference.onnx_export`), so it works for every registered
method. A runtime is a callable ``(b, c, s, s) landmarks, {name: (b, ...)} state -> (b, 3, s, s)``
with the eager model's function; when it is built it is checked against eager PyTorch on
seeded random inputs at its batch size, and the largest absolute difference is kept
(:attr:`SynthesisRuntime.max_abs_diff`) and must stay within 1e-3.

What is slow to build is cached on disk under ``$TALKINGHEAD_HOME/runtime`` (default
``~/.cache/talkinghead/runtime``), keyed by the method, the weights' fingerprint and the
batch size:

    onnx/<method>-<fingerprint>-b<batch>/synthesis.onnx   # an export, reused by the next run
    inductor/                                             # torch.compile's own cache of compiled code
    compiled/<method>-<fingerprint>-b<batch>.json         # marks a compile that completed (a cache hit)
    auto.json                                             # which runtime ``auto`` measured fastest, per key

``auto`` times the candidates for the device once (CPU: eager and onnx; CUDA: eager and
compile) and remembers the winner in ``auto.json``, so later runs start without timing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from talkinghead.errors import InvalidInputError
from talkinghead.models.inference_model import InferenceModel
from talkinghead.utils.atomic import atomic_write_json

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "compile", "onnx", "auto")
# The largest accepted |runtime - eager| on the seeded check inputs.
TOLERANCE = 1e-3
CHECK_SEED = 0
AUTO_FILE = "auto.json"

SynthesisFunction = Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]


class RuntimeMismatchError(InvalidInputError):
    """A runtime whose outputs differ from eager PyTorch by more than the tolerance."""


@dataclass
class SynthesisRuntime:
    """A built runtime of one model at one batch size.

    Attributes:
        kind: ``eager``, ``compile`` or ``onnx`` (what ``auto`` chose, for ``auto``).
        run: ``run(landmarks, state) -> frames``, (b, c, s, s) and {name: (b, ...)} -> (b, 3, s, s).
        max_abs_diff: largest |this runtime - eager| on seeded random inputs (0 for eager).
        cache_hit: whether the build reused what an earlier run left in the cache.
        build_seconds: wall time of the build, the check and (for ``auto``) the timing.
        key: the cache key ``<method>-<fingerprint>-b<batch>``.
        timings: ms/frame of each candidate ``auto`` timed (empty otherwise, or when remembered).
    """

    kind: str
    run: SynthesisFunction
    max_abs_diff: float
    cache_hit: bool
    build_seconds: float
    key: str
    timings: dict[str, float] | None = None

    def __call__(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.run(landmarks, state)

    def describe(self) -> str:
        """One line for logs and summaries, e.g. ``onnx (cached; max |diff| vs eager 2.1e-06)``."""
        origin = "cached" if self.cache_hit else f"built in {self.build_seconds:.1f} s"
        return f"{self.kind} ({origin}; max |diff| vs eager {self.max_abs_diff:.2g})"


def runtime_cache_dir() -> Path:
    """``$TALKINGHEAD_HOME/runtime``: where exports, compiled code and ``auto``'s choices are kept."""
    from talkinghead.weights.registry import home_dir

    return home_dir() / "runtime"


def cache_key(method: str, fingerprint: str, batch_size: int) -> str:
    """``<method>-<fingerprint>-b<batch>``: what one cached build is for."""
    return f"{method}-{fingerprint}-b{batch_size}"


def check_inputs(model: InferenceModel, batch_size: int, device: torch.device) -> tuple[torch.Tensor, dict]:
    """Seeded random (landmarks, state) at ``batch_size`` on ``device`` (the check every runtime passes)."""
    from talkinghead.inference.onnx_export import example_inputs

    inputs = example_inputs(model, batch_size, generator=torch.Generator().manual_seed(CHECK_SEED))
    state = dict(zip(model.person_state_spec(), (t.to(device) for t in inputs[1:])))
    return inputs[0].to(device), state


def _eager(model: InferenceModel) -> SynthesisFunction:
    def run(landmarks, state):
        with torch.no_grad():
            return model(landmarks, state)

    return run


def _onnx(model: InferenceModel, key: str, cache: Path, threads: int) -> tuple[SynthesisFunction, bool]:
    """An onnxruntime session of the contract's export, exported once per key and reused."""
    from talkinghead.inference.onnx_export import MANIFEST_FILE, ONNX_FILE, export_onnx, load_synthesis_session

    folder = cache / "onnx" / key
    hit = (folder / MANIFEST_FILE).is_file() and (folder / ONNX_FILE).is_file()
    if not hit:
        folder.parent.mkdir(parents=True, exist_ok=True)
        # overwrite: a folder left by an interrupted export (no manifest) is replaced
        export_onnx(model, folder, overwrite=folder.exists())
    session = load_synthesis_session(folder, threads=threads)
    names = ["landmarks", *model.person_state_spec()]
    output = session.get_outputs()[0].name

    def run(landmarks, state):
        device = landmarks.device
        feeds = {names[0]: landmarks.detach().float().cpu().numpy()}
        feeds.update({name: state[name].detach().float().cpu().numpy() for name in names[1:]})
        return torch.from_numpy(session.run([output], feeds)[0]).to(device)

    return run, hit


def _compile(model: InferenceModel, key: str, cache: Path, mode: str | None) -> tuple[SynthesisFunction, bool]:
    """``torch.compile`` of the whole per-frame function; inductor's code cache lives under the runtime cache."""
    # Set before the first compile of the process; a user's own setting wins.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "inductor"))
    marker = cache / "compiled" / f"{key}.json"
    hit = marker.is_file()
    compiled = torch.compile(model, mode=mode, dynamic=False)

    def run(landmarks, state):
        with torch.no_grad():
            return compiled(landmarks, state)

    return run, hit


def _max_abs_diff(model: InferenceModel, run: SynthesisFunction, batch_size: int, device: torch.device) -> float:
    landmarks, state = check_inputs(model, batch_size, device)
    with torch.no_grad():
        expected = model(landmarks, state).double()
        actual = run(landmarks, state).double()
    if actual.shape != expected.shape:
        raise RuntimeMismatchError(f"the runtime returned shape {tuple(actual.shape)}, eager {tuple(expected.shape)}")
    return float((actual - expected).abs().max())


def _ms_per_frame(run: SynthesisFunction, model: InferenceModel, batch_size: int, device: torch.device,
                  seconds: float = 1.0) -> float:
    landmarks, state = check_inputs(model, batch_size, device)
    run(landmarks, state)  # warm-up
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        run(landmarks, state)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        calls += 1
    return (time.perf_counter() - start) / (calls * batch_size) * 1000


def _auto_candidates(device: torch.device) -> list[str]:
    # On a CPU a cold torch.compile costs minutes and measured slower than onnxruntime here;
    # on a GPU onnxruntime's CPU provider is no candidate.
    return ["eager", "compile"] if device.type == "cuda" else ["eager", "onnx"]


def _auto_choices(path: Path) -> dict[str, str]:
    """``auto.json``: remembered choice per :func:`_auto_key` (empty when missing or unreadable)."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("%s: unreadable; auto measures the runtimes again", path)
        return {}


def _auto_key(key: str, device: torch.device) -> str:
    return f"{key}-{device.type}-t{torch.get_num_threads()}"


def _remembered(cache: Path, key: str, device: torch.device) -> str | None:
    choice = _auto_choices(cache / AUTO_FILE).get(_auto_key(key, device))
    return choice if choice in RUNTIMES[:3] else None


def _remember(cache: Path, key: str, device: torch.device, choice: str) -> None:
    choices = _auto_choices(cache / AUTO_FILE)
    choices[_auto_key(key, device)] = choice
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache / AUTO_FILE, choices)


def build_runtime(
    model: InferenceModel,
    kind: str = "eager",
    *,
    batch_size: int,
    fingerprint: str,
    cache_dir: str | Path | None = None,
    compile_mode: str | None = None,
    tolerance: float = TOLERANCE,
    reference: InferenceModel | None = None,
) -> SynthesisRuntime:
    """Build (or load from the cache) the per-frame synthesis of ``model`` in runtime ``kind``.

    Args:
        model: the inference model in eval mode, on its device.
        kind: ``eager``, ``compile``, ``onnx`` or ``auto``.
        batch_size: the batch the runtime will mostly see (the cache key; others still work).
        fingerprint: the weights' fingerprint (:func:`~talkinghead.inference.source.model_fingerprint`).
        cache_dir: the runtime cache (default :func:`runtime_cache_dir`).
        compile_mode: ``torch.compile`` mode (``reduce-overhead`` for CUDA graphs on a GPU).
        tolerance: largest accepted max abs difference to eager.
        reference: the eager model the outputs are checked against (default ``model``; the
            original when ``model`` was rewritten by :func:`~talkinghead.inference.rewrites.fuse_for_inference`).

    Raises:
        InvalidInputError: an unknown ``kind``.
        RuntimeMismatchError: the runtime's outputs differ from eager by more than ``tolerance``.
        MissingDependencyError: ``onnx`` without the ONNX extras installed.
    """
    if kind not in RUNTIMES:
        raise InvalidInputError(f"unknown runtime {kind!r}; choose one of {', '.join(RUNTIMES)}")
    start = time.perf_counter()
    cache = Path(cache_dir) if cache_dir is not None else runtime_cache_dir()
    device = next(model.parameters()).device
    key = cache_key(model.method, fingerprint, batch_size)
    timings = None
    if kind == "auto":
        choice = _remembered(cache, key, device)
        hit = choice is not None
        if choice is None:
            timings = {}
            for candidate in _auto_candidates(device):
                built = build_runtime(model, candidate, batch_size=batch_size, fingerprint=fingerprint,
                                      cache_dir=cache, compile_mode=compile_mode, tolerance=tolerance,
                                      reference=reference)
                timings[candidate] = _ms_per_frame(built.run, model, batch_size, device)
            choice = min(timings, key=timings.get)
            _remember(cache, key, device, choice)
            log.info("auto runtime: %s (ms/frame %s)", choice, timings)
        chosen = build_runtime(model, choice, batch_size=batch_size, fingerprint=fingerprint,
                               cache_dir=cache, compile_mode=compile_mode, tolerance=tolerance, reference=reference)
        chosen.cache_hit = chosen.cache_hit and hit
        chosen.build_seconds, chosen.timings = time.perf_counter() - start, timings
        return chosen
    if kind == "eager":
        run, hit = _eager(model), True
    elif kind == "onnx":
        run, hit = _onnx(model, key, cache, torch.get_num_threads())
    else:
        run, hit = _compile(model, key, cache, compile_mode)
    checked = reference if reference is not None else model
    diff = 0.0 if kind == "eager" and checked is model else _max_abs_diff(checked, run, batch_size, device)
    if not diff <= tolerance:  # NaN too
        raise RuntimeMismatchError(
            f"the {kind} runtime of this {model.method} model differs from eager PyTorch by up to {diff:.3g} "
            f"(tolerance {tolerance:g}); use --runtime eager, or delete {cache} to rebuild the cache"
        )
    if kind == "compile" and not hit:
        atomic_write_json_mkdir(cache / "compiled" / f"{key}.json",
                                {"key": key, "torch": torch.__version__, "mode": compile_mode, "max_abs_diff": diff})
    return SynthesisRuntime(kind, run, diff, hit, time.perf_counter() - start, key, timings)


def atomic_write_json_mkdir(path: Path, data: dict) -> None:
    """:func:`atomic_write_json` into a folder that may not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)

