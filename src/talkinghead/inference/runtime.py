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
    onnx/<method>-<fingerprint>-b<batch>.export.log       # the exporter's log of that export (~320 lines)
    inductor/                                             # torch.compile's own cache of compiled code
    compiled/<method>-<fingerprint>-b<batch>.json         # marks a compile that completed (a cache hit)
    locks/<kind>-<key>.lock                               # held while one process builds that entry
    auto.json                                             # which runtime ``auto`` measured fastest, per key

The cache repairs itself: an entry that fails to load, to run or to match eager, or that is of
the wrong type (a file where a folder belongs, or the reverse), is set aside as
``<name>.bad-<time>`` with a warning and built again. Two processes building the same entry
take turns (a file lock): the second one waits and then finds the build in the cache. A
compiled runtime always runs at its batch size (a shorter last batch is padded), so
``torch.compile`` builds once per job instead of once more for the last batch.

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

from talkinghead.errors import InvalidInputError, TalkingHeadError
from talkinghead.models.inference_model import InferenceModel
from talkinghead.utils.atomic import atomic_write_json
from talkinghead.utils.native_logs import native_logs_wanted, output_to_file
from talkinghead.utils.run_lock import wait_for_lock

log = logging.getLogger(__name__)

RUNTIMES = ("eager", "compile", "onnx", "auto")
# The largest accepted |runtime - eager| on the seeded check inputs.
TOLERANCE = 1e-3
CHECK_SEED = 0
AUTO_FILE = "auto.json"

SynthesisFunction = Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]


class RuntimeMismatchError(InvalidInputError):
    """A runtime whose outputs differ from eager PyTorch by more than the tolerance."""


class RuntimeCacheError(TalkingHeadError, OSError):
    """A runtime cache entry that is damaged and cannot be set aside (the message says what to delete)."""


def _set_aside(path: Path, reason: str) -> Path:
    """Rename the damaged cache entry ``path`` to ``<name>.bad-<time>`` beside it, with a warning."""
    aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        path.rename(aside)
    except OSError as err:
        raise RuntimeCacheError(
            f"{path}: {reason}, and it cannot be moved aside ({err.strerror or err}); delete it, "
            "or set TALKINGHEAD_HOME to another folder"
        ) from err
    log.warning("%s: %s; set aside as %s and built again (delete that when you no longer need it)",
                path, reason, aside.name)
    return aside


def _ensure_folder(path: Path) -> Path:
    """``path`` as a folder of the cache: a file in its place is set aside first."""
    if path.exists() and not path.is_dir():
        _set_aside(path, "a file where the runtime cache keeps a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fixed_batch(run: SynthesisFunction, batch_size: int) -> SynthesisFunction:
    """``run`` called at ``batch_size`` only: other batches are split, the last one padded.

    ``torch.compile`` with static shapes compiles again for every new batch size; a job's
    last, shorter batch used to cost a second full compile (428 s for 10 frames on a CPU).
    Padding repeats the last frame's inputs; the padded rows' outputs are dropped.
    """

    def run_fixed(landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = landmarks.shape[0]
        if total == batch_size:
            return run(landmarks, state)
        outputs = []
        for start in range(0, total, batch_size):
            part = [landmarks[start:start + batch_size]] + [state[n][start:start + batch_size] for n in state]
            count = part[0].shape[0]
            if count < batch_size:  # (count, ...) -> (batch_size, ...), repeating the last row
                part = [torch.cat([t, t[-1:].expand(batch_size - count, *t.shape[1:])]) for t in part]
            outputs.append(run(part[0], dict(zip(state, part[1:])))[:count])  # (count, 3, s, s)
        return torch.cat(outputs)

    return run_fixed


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
    """An onnxruntime session of the contract's export, exported once per key and reused.

    The exporter's log goes to ``onnx/<key>.export.log`` (shown on the terminal with ``-v``).
    """
    from talkinghead.inference.onnx_export import (
        MANIFEST_FILE,
        ONNX_FILE,
        OnnxExportError,
        export_onnx,
        load_synthesis_session,
    )

    folder = _ensure_folder(cache / "onnx") / key
    if folder.exists() and not folder.is_dir():
        _set_aside(folder, "a file where the cached ONNX export's folder belongs")
    hit = (folder / MANIFEST_FILE).is_file() and (folder / ONNX_FILE).is_file()
    if not hit:
        if folder.is_dir() and any(folder.iterdir()):
            _set_aside(folder, f"an incomplete cached ONNX export (no {MANIFEST_FILE} or {ONNX_FILE})")
        elif folder.is_dir():
            folder.rmdir()
        log_path = cache / "onnx" / f"{key}.export.log"
        log.info("exporting the %s synthesis network to ONNX (once; the exporter's log: %s)", model.method, log_path)
        try:
            if native_logs_wanted():
                export_onnx(model, folder)
            else:
                with output_to_file(log_path):
                    export_onnx(model, folder)
        except OnnxExportError as err:
            raise OnnxExportError(f"{err} (the exporter's log: {log_path})") from err
    session = load_synthesis_session(folder, threads=threads)
    names = ["landmarks", *model.person_state_spec()]
    output = session.get_outputs()[0].name

    def run(landmarks, state):
        device = landmarks.device
        feeds = {names[0]: landmarks.detach().float().cpu().numpy()}
        feeds.update({name: state[name].detach().float().cpu().numpy() for name in names[1:]})
        return torch.from_numpy(session.run([output], feeds)[0]).to(device)

    return run, hit


def _compile(model: InferenceModel, key: str, cache: Path, mode: str | None,
             batch_size: int) -> tuple[SynthesisFunction, bool]:
    """``torch.compile`` of the whole per-frame function; inductor's code cache lives under the runtime cache.

    The compiled function only ever sees ``batch_size`` (:func:`_fixed_batch`) and contiguous
    inputs: one compile per job.
    """
    # Set before the first compile of the process; a user's own setting wins.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "inductor"))
    marker = _ensure_folder(cache / "compiled") / f"{key}.json"
    if marker.exists() and not marker.is_file():
        _set_aside(marker, "a folder where the compile marker file belongs")
    hit = marker.is_file()
    compiled = torch.compile(model, mode=mode, dynamic=False)

    def run(landmarks, state):
        # Static shapes guard strides too: a job's state (one person expanded over the batch, stride
        # 0) beside the check's contiguous inputs was a second full compile. Contiguous copies: one.
        with torch.no_grad():
            return compiled(landmarks.contiguous(), {name: value.contiguous() for name, value in state.items()})

    return _fixed_batch(run, batch_size), hit


def _set_aside_compiled(cache: Path, key: str, reason: str) -> None:
    """A cached compile that failed: set aside its marker and inductor's code cache, forget in-memory graphs."""
    marker = cache / "compiled" / f"{key}.json"
    if marker.exists():
        _set_aside(marker, reason)
    inductor = cache / "inductor"
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") == str(inductor) and inductor.exists():
        _set_aside(inductor, reason)
    torch._dynamo.reset()


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
    if path.exists() and not path.is_file():
        _set_aside(path, "a folder where auto's choices file belongs")
    if not path.is_file():
        return {}
    try:
        choices = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        choices = None
    if not isinstance(choices, dict):
        log.warning("%s: unreadable; auto measures the runtimes again", path)
        return {}
    return choices


def _auto_key(key: str, device: torch.device) -> str:
    return f"{key}-{device.type}-t{torch.get_num_threads()}"


def _remembered(cache: Path, key: str, device: torch.device) -> str | None:
    choice = _auto_choices(cache / AUTO_FILE).get(_auto_key(key, device))
    return choice if choice in RUNTIMES[:3] else None


def _remember(cache: Path, key: str, device: torch.device, choice: str) -> None:
    choices = _auto_choices(cache / AUTO_FILE)
    choices[_auto_key(key, device)] = choice
    _ensure_folder(cache)
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
    checked = reference if reference is not None else model
    if kind == "eager":
        run, hit = _eager(model), True
        diff = 0.0 if checked is model else _checked_diff(kind, model, checked, run, batch_size, device, tolerance,
                                                           hit=False)
    else:
        _ensure_folder(cache)
        with wait_for_lock(cache / "locks" / f"{kind}-{key}.lock",
                           f"another process is building the {kind} runtime {key}; waiting for it"):
            run, hit, diff = _build_cached(kind, model, checked, key, cache, batch_size, device, compile_mode,
                                           tolerance)
            if kind == "compile" and not hit:
                atomic_write_json_mkdir(cache / "compiled" / f"{key}.json",
                                        {"key": key, "torch": torch.__version__, "mode": compile_mode,
                                         "max_abs_diff": diff})
    return SynthesisRuntime(kind, run, diff, hit, time.perf_counter() - start, key, timings)


def _checked_diff(kind: str, model: InferenceModel, checked: InferenceModel, run: SynthesisFunction,
                  batch_size: int, device: torch.device, tolerance: float, *, hit: bool) -> float:
    """|run - eager| on the check inputs, or :class:`RuntimeMismatchError` when over ``tolerance``."""
    diff = _max_abs_diff(checked, run, batch_size, device)
    if not diff <= tolerance:  # NaN too
        fix = "it is rebuilt" if hit else "use --runtime eager, and report this model and runtime as a bug"
        raise RuntimeMismatchError(
            f"the {kind} runtime of this {model.method} model differs from eager PyTorch by up to {diff:.3g} "
            f"(tolerance {tolerance:g}); {fix}"
        )
    return diff


def _build_cached(kind: str, model: InferenceModel, checked: InferenceModel, key: str, cache: Path,
                  batch_size: int, device: torch.device, compile_mode: str | None,
                  tolerance: float) -> tuple[SynthesisFunction, bool, float]:
    """Build ``onnx`` or ``compile`` (from the cache when there) and check it; a cached build that
    fails to load, run or check is set aside and built once more from scratch."""
    for attempt in range(2):
        # what the cache holds before the build (the builders below raise before returning it)
        if kind == "onnx":
            hit = (cache / "onnx" / key / "onnx_export.json").is_file()
        else:
            hit = (cache / "compiled" / f"{key}.json").is_file()
        try:
            if kind == "onnx":
                run, hit = _onnx(model, key, cache, torch.get_num_threads())
            else:
                run, hit = _compile(model, key, cache, compile_mode, batch_size)
            return run, hit, _checked_diff(kind, model, checked, run, batch_size, device, tolerance, hit=hit)
        # onnxruntime and inductor raise their own types (no common base) for damaged files
        except Exception as err:
            if not hit or attempt:
                raise
            reason = f"the cached {kind} build fails ({type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]})"
            if kind == "onnx":
                _set_aside(cache / "onnx" / key, reason)
            else:
                _set_aside_compiled(cache, key, reason)
    raise AssertionError("unreachable")  # the loop returns or raises


def atomic_write_json_mkdir(path: Path, data: dict) -> None:
    """:func:`atomic_write_json` into a folder that may not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)

