"""Runtime choice (eager | compile | onnx | auto) through the method contract, and its on-disk cache."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import talkinghead.models  # noqa: F401  (registers every method)
from talkinghead.config import load_config
from talkinghead.inference.runtime import (
    AUTO_FILE,
    RuntimeMismatchError,
    _fixed_batch,
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


def test_a_cached_build_of_other_weights_is_set_aside_and_rebuilt(cache, tmp_path, caplog):
    model = tiny_model("lsr")
    key_print = fingerprint(model)
    built = build_runtime(model, "onnx", batch_size=2, fingerprint=key_print, cache_dir=cache)
    own = tmp_path / "cache"
    shutil.copytree(cache / "onnx" / built.key, own / "onnx" / built.key)
    other = tiny_model("lsr")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    # the cache is keyed by fingerprint: handing it a wrong one finds a graph of other weights,
    # which fails the check against eager, so it is set aside and exported again
    with caplog.at_level(logging.WARNING):
        rebuilt = build_runtime(other, "onnx", batch_size=2, fingerprint=key_print, cache_dir=own)
    assert not rebuilt.cache_hit and rebuilt.max_abs_diff <= 1e-3
    assert "differs from eager" in caplog.text and "set aside" in caplog.text
    assert len(list((own / "onnx").glob(f"{built.key}.bad-*"))) == 1


def test_a_fresh_build_that_differs_from_eager_is_refused(cache):
    model = tiny_model("lsr")
    with pytest.raises(RuntimeMismatchError, match="differs from eager.*use --runtime eager"):
        build_runtime(model, "onnx", batch_size=2, fingerprint=fingerprint(model), cache_dir=cache, tolerance=-1.0)


def _cache_with_entry(cache: Path, tmp_path: Path):
    """A private copy of the module cache's LSR onnx entry: (model, key, the copy's root)."""
    model = tiny_model("lsr")
    built = build_runtime(model, "onnx", batch_size=2, fingerprint=fingerprint(model), cache_dir=cache)
    own = tmp_path / "cache"
    shutil.copytree(cache / "onnx" / built.key, own / "onnx" / built.key)
    return model, built.key, own


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no manifest"])
def test_a_damaged_cached_onnx_file_is_rebuilt(damage, cache, tmp_path, caplog):
    model, key, own = _cache_with_entry(cache, tmp_path)
    folder = own / "onnx" / key
    onnx_file = folder / "synthesis.onnx"
    if damage == "truncated":
        onnx_file.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 2])
    elif damage == "garbage":
        onnx_file.write_bytes(b"\x00not an onnx graph" * 100)
    else:
        (folder / "onnx_export.json").unlink()
    with caplog.at_level(logging.WARNING):
        rebuilt = build_runtime(model, "onnx", batch_size=2, fingerprint=fingerprint(model), cache_dir=own)
    assert not rebuilt.cache_hit and rebuilt.max_abs_diff <= 1e-3
    assert "set aside" in caplog.text and str(folder) in caplog.text
    assert (folder / "onnx_export.json").is_file()
    (aside,) = (own / "onnx").glob(f"{key}.bad-*")  # the damaged one is kept for a look, not deleted
    assert aside.is_dir()
    again = build_runtime(model, "onnx", batch_size=2, fingerprint=fingerprint(model), cache_dir=own)
    assert again.cache_hit


def test_wrong_type_files_in_the_cache_are_set_aside(cache, tmp_path, caplog):
    model, key, own = _cache_with_entry(cache, tmp_path)
    shutil.rmtree(own / "onnx" / key)
    (own / "onnx" / key).write_text("a file where a folder belongs")
    (own / AUTO_FILE).mkdir()  # a folder where auto.json belongs
    (own / "compiled").write_text("a file where a folder belongs")
    with caplog.at_level(logging.WARNING):
        rebuilt = build_runtime(model, "onnx", batch_size=2, fingerprint=fingerprint(model), cache_dir=own)
        auto = build_runtime(model, "auto", batch_size=2, fingerprint=fingerprint(model), cache_dir=own)
    assert rebuilt.max_abs_diff <= 1e-3 and auto.kind in ("eager", "onnx")
    assert json.loads((own / AUTO_FILE).read_text())
    assert len(list((own / "onnx").glob(f"{key}.bad-*"))) == 1
    assert len(list(own.glob(f"{AUTO_FILE}.bad-*"))) == 1
    assert caplog.text.count("set aside") >= 2


def test_the_exporter_log_goes_to_a_file(tmp_path, capfd):
    # the CLI's logging.basicConfig: a root handler at INFO that writes to the terminal
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        model = tiny_model("lsr")
        built = build_runtime(model, "onnx", batch_size=1, fingerprint=fingerprint(model), cache_dir=tmp_path)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    out, err = capfd.readouterr()
    log_file = tmp_path / "onnx" / f"{built.key}.export.log"
    logged = log_file.read_text()
    assert len(logged.splitlines()) > 20, logged  # the exporter's progress lines
    shown = out + err
    assert len(shown.splitlines()) <= 3, shown  # "exporting ... (the exporter's log: ...)" at most
    assert str(log_file) in shown


def test_concurrent_first_builds_wait_for_each_other(tmp_path):
    """Two processes build the same entry at once: both succeed, the second finds the first's export."""
    script = (
        "import sys, json, torch\n"
        "sys.path.insert(0, %r)\n"
        "from test_runtime import tiny_model, fingerprint\n"
        "from talkinghead.inference.runtime import build_runtime\n"
        "m = tiny_model('lsr')\n"
        "r = build_runtime(m, 'onnx', batch_size=2, fingerprint=fingerprint(m), cache_dir=%r)\n"
        "print(json.dumps({'hit': r.cache_hit, 'diff': r.max_abs_diff}))\n"
    ) % (str(Path(__file__).parent), str(tmp_path))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["hit"] for r in results) == [False, True]
    assert all(r["diff"] <= 1e-3 for r in results)
    assert not list((tmp_path / "onnx").glob("*.bad-*"))


def test_fixed_batch_pads_the_last_batch_and_splits_long_ones():
    """A compiled runtime sees one batch size only (no recompile for the job's last, short batch)."""
    seen = []

    def reference(landmarks, state):  # (b, 2, 5, 5), {z: (b, 3)} -> (b, 1, 5, 5), row by row
        return landmarks[:, :1] * 2 + state["z"][:, :1, None, None]

    def run(landmarks, state):
        seen.append(landmarks.shape[0])
        return reference(landmarks, state)

    fixed = _fixed_batch(run, 4)
    for total in (4, 3, 1, 9):
        landmarks = torch.randn(total, 2, 5, 5)
        state = {"z": torch.randn(total, 3)}
        assert torch.equal(fixed(landmarks, state), reference(landmarks, state))
    assert seen == [4, 4, 4, 4, 4, 4]  # 4; 3 padded; 1 padded; 9 = 4 + 4 + 1 padded


def test_a_compiled_runtime_builds_one_graph_for_a_whole_job(monkeypatch, tmp_path):
    """The check's inputs and a job's (one person's state expanded over the batch, a padded last batch)
    reach the compiled function alike: one graph, not one more for the first real batch (a second full
    compile, measured: 2 graphs for a 10-frame animate on a CPU)."""
    graphs = []

    def counting_backend(graph_module, example_inputs):  # runs the traced graph as is; counts the builds
        graphs.append(graph_module)
        return graph_module.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, mode=None, dynamic=None: real_compile(
        model, backend=counting_backend, dynamic=dynamic))
    torch._dynamo.reset()
    model = tiny_model("metaportrait")
    runtime = build_runtime(model, "compile", batch_size=2, fingerprint=fingerprint(model), cache_dir=tmp_path)
    assert len(graphs) == 1  # the check against eager
    landmarks, state = check_inputs(model, 3, torch.device("cpu"))
    person = {name: value[0] for name, value in state.items()}
    with torch.no_grad():
        for total in (2, 3):  # a full batch, then 2 + a padded 1, as AnimationPipeline calls it
            batch = model.expand_state(person, total)
            assert torch.allclose(runtime(landmarks[:total], batch), model(landmarks[:total], batch), atol=1e-4)
    torch._dynamo.reset()
    assert len(graphs) == 1


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
