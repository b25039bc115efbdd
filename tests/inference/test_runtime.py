"""Runtime choice (eager | compile | onnx | auto) through the method contract, and its on-disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import talkinghead.models  # noqa: F401  (registers every method)
from talkinghead.config import load_config
from talkinghead.inference.runtime import (
    AUTO_FILE,
    RuntimeMismatchError,
    build_runtime,
    cache_key,
    check_inputs,
)
from talkinghead.inference.source import model_fingerprint
from talkinghead.errors import InvalidInputError
from talkinghead.models import get_method, registered_methods

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def tiny_model(method: str):
    """The method's tiny preset (random weights, seeded), in eval mode."""
    torch.manual_seed(0)
    config = load_config(CONFIGS / method / "tiny.yaml").model
    return get_method(method).inference_model(config).eval()


def fingerprint(model) -> str:
    return model_fingerprint({n: getattr(model, n) for n in model.network_names})


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runtime-cache")


@pytest.mark.parametrize("method", registered_methods())
def test_onnx_runtime_matches_eager_and_is_cached(method, cache):
    """One export per method (the module's cache then serves the tests below)."""
    model = tiny_model(method)
    first = build_runtime(model, "onnx", batch_size=2, fingerprint=fingerprint(model), cache_dir=cache)
    assert first.kind == "onnx" and not first.cache_hit
    assert 0 <= first.max_abs_diff <= 1e-3
    assert (cache / "onnx" / first.key / "synthesis.onnx").is_file()
    assert first.key == f"{method}-{fingerprint(model)}-b2"
    # another batch size than the key's still runs (dynamic batch), and matches eager
    landmarks, state = check_inputs(model, 3, torch.device("cpu"))
    with torch.no_grad():
        expected = model(landmarks, state)
    assert (first(landmarks, state) - expected).abs().max() <= 1e-3

    second = build_runtime(model, "onnx", batch_size=2, fingerprint=fingerprint(model), cache_dir=cache)
    assert second.cache_hit and second.build_seconds < first.build_seconds
    assert second.max_abs_diff == pytest.approx(first.max_abs_diff)
    # the key holds the batch size: another batch is another entry
    assert cache_key(method, fingerprint(model), 1) != first.key


def test_auto_measures_once_and_remembers(cache):
    model = tiny_model("lsr")
    first = build_runtime(model, "auto", batch_size=2, fingerprint=fingerprint(model), cache_dir=cache)
    assert first.kind in ("eager", "onnx") and set(first.timings) == {"eager", "onnx"}
    assert first.kind == min(first.timings, key=first.timings.get)
    choices = json.loads((cache / AUTO_FILE).read_text())
    assert first.kind in choices.values()
    second = build_runtime(model, "auto", batch_size=2, fingerprint=fingerprint(model), cache_dir=cache)
    assert second.kind == first.kind and second.timings is None and second.cache_hit


def test_a_runtime_that_differs_from_eager_is_refused(cache):
    model = tiny_model("lsr")
    key_print = fingerprint(model)
    build_runtime(model, "onnx", batch_size=2, fingerprint=key_print, cache_dir=cache)
    other = tiny_model("lsr")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    # the cache is keyed by fingerprint: handing it a wrong one reuses a graph of other weights
    with pytest.raises(RuntimeMismatchError, match="differs from eager"):
        build_runtime(other, "onnx", batch_size=2, fingerprint=key_print, cache_dir=cache)


def test_unknown_runtime_is_named():
    model = tiny_model("lsr")
    with pytest.raises(InvalidInputError, match="unknown runtime 'tensorrt'"):
        build_runtime(model, "tensorrt", batch_size=1, fingerprint="x")


def test_pipeline_runtime_and_rewrites_keep_frames(cache):
    from talkinghead.inference.pipeline import AnimationPipeline

    model = tiny_model("metaportrait")
    landmarks, state = check_inputs(model, 2, torch.device("cpu"))
    with torch.no_grad():
        expected = model(landmarks, state)
    pipeline = AnimationPipeline(model)
    before = pipeline.fingerprint
    runtime = pipeline.set_runtime("onnx", batch_size=2, cache_dir=cache)
    assert runtime.max_abs_diff <= 1e-3
    assert fingerprint(pipeline.model) == before  # rewrites leave the weights alone
    assert (runtime(landmarks, state) - expected).abs().max() <= 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("method", registered_methods())
def test_compiled_runtime_matches_eager_and_is_cached(method, tmp_path):
    model = tiny_model(method)
    first = build_runtime(model, "compile", batch_size=2, fingerprint=fingerprint(model), cache_dir=tmp_path)
    assert first.max_abs_diff <= 1e-3 and not first.cache_hit
    second = build_runtime(model, "compile", batch_size=2, fingerprint=fingerprint(model), cache_dir=tmp_path)
    assert second.cache_hit and second.max_abs_diff <= 1e-3
