"""The method contract: every registered method trains, releases, loads, animates, exports and evaluates.

One test per registered method, end to end on real frames: its tiny config trains for
one step per stage through the ``train`` command, the release loads through
``load_pretrained``, two real driving frames are animated, the per-frame synthesis is
exported to ONNX and matches PyTorch, one real video is evaluated, and a saved source
round-trips (and is refused by another model). A new method is done when it registers
and passes this test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import talkinghead.training  # noqa: F401  (registers every recipe)
from talkinghead.cli import main
from talkinghead.config import PrepareConfig, load_config
from talkinghead.data.prepare import RunOptions, prepare_dataset
from talkinghead.data.frame_source import open_frame_source
from talkinghead.evaluation.options import EvaluateOptions
from talkinghead.evaluation.protocol import evaluate
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.inference.source import SourceError
from talkinghead.models import InferenceModel, get_method, load_pretrained, registered_methods
from talkinghead.training.recipe import get_recipe

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PORTRAIT = EXAMPLES / "portraits" / "sadtalker_happy.png"
DRIVING = EXAMPLES / "videos" / "liveportrait_d18.mp4"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two real clips at 64 px with landmark segmentation (every method's tiny config trains on it)."""
    out = tmp_path_factory.mktemp("contract") / "dataset"
    config = PrepareConfig(size=64, frames_per_clip=6, segmentation="landmarks")
    videos = tmp_path_factory.mktemp("contract_videos")
    for name in ("liveportrait_d18.mp4", "liveportrait_d19.mp4"):
        (videos / name).symlink_to(EXAMPLES / "videos" / name)
    summary = prepare_dataset(videos, out, config, RunOptions(progress=False))
    assert summary.clips_done == 2, summary.format()
    return out


@pytest.fixture(scope="module")
def driving_frames() -> list[np.ndarray]:
    source = open_frame_source(DRIVING)
    return [frame for _, _, frame in source.frames([0, 12])]


def _tiny_overrides(config_path: Path, data: Path) -> list[str]:
    """One step per stage, K = 2, batch 2, no warm-up, for any method's tiny config."""
    stages = len(load_config(config_path).stages)
    out = [f"data.root={data}", "data.num_workers=0", "data.holdout_fraction=0.3", "data.eval_k=2"]
    for i in range(stages):
        out += [f"stages.{i}.steps=1", f"stages.{i}.k=2", f"stages.{i}.batch_size=2", f"stages.{i}.warmup_steps=0"]
    return out


@pytest.mark.parametrize("method", registered_methods())
def test_method_contract(method, dataset, driving_frames, tmp_path):
    spec = get_method(method)
    recipe = get_recipe(method)
    assert issubclass(spec.inference_model, InferenceModel) and spec.inference_model.method == method
    config_path = REPO / "configs" / method / "tiny.yaml"
    assert config_path.is_file(), f"method {method} needs configs/{method}/tiny.yaml"
    assert set(s.name for s in load_config(config_path).stages) <= set(recipe.stages)

    # tiny config -> a step per stage -> release
    run = tmp_path / "run"
    assert main(["train", str(config_path), *_tiny_overrides(config_path, dataset), "--run-dir", str(run)]) == 0
    release = run / "release"

    # load_pretrained: the right method, every inference network, the recorded preparation
    pretrained = load_pretrained(release)
    assert pretrained.method == method
    model = pretrained.inference_model()
    assert isinstance(model, spec.inference_model)
    # every network the model holds is one the method declares (an optional one, e.g. a mouth
    # generator, is absent when its config does not enable it), and the per-frame ones are all there
    assert set(model.network_names) <= set(spec.inference_networks)
    assert set(model.synthesis_networks()) <= set(model.network_names)
    assert pretrained.prepare_config().size == 64

    # animate two real frames
    pipeline = AnimationPipeline.from_weights(pretrained, device="cpu")
    source = pipeline.set_source([PORTRAIT])
    assert source.method == method
    assert {k: tuple(v.shape) for k, v in source.state.items()} == {
        k: spec_.shape for k, spec_ in model.person_state_spec().items()
    }
    frames = [f.image for f in pipeline.animate(driving_frames)]
    assert len(frames) == 2 and all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1])  # the driving motion reaches the output

    # ONNX export matches PyTorch
    pytest.importorskip("onnxruntime")
    from talkinghead.inference.onnx_export import export_onnx

    result = export_onnx(pipeline.model, tmp_path / "onnx")
    assert result.max_abs_diff < 1e-4

    # evaluate one real video; results.json records the method's registered name
    options = EvaluateOptions(ks=[2], split=None, max_videos=1, targets_per_video=2, metrics=["psnr", "ssim"],
                              device="cpu", workers=0)
    results = evaluate(str(release), dataset, tmp_path / "eval", options, progress=False)
    assert [run["method"] for run in results["runs"]] == [method]
    assert results["runs"][0]["label"] == spec.label
    assert np.isfinite(results["runs"][0]["summary"]["psnr"])

    # saved source round trip: identical frames; another model refuses it
    saved = pipeline.save_source(tmp_path / "person.safetensors")
    fresh = AnimationPipeline.from_pretrained(release, device="cpu")
    fresh.load_source(saved)
    again = [f.image for f in fresh.animate(driving_frames)]
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    torch.manual_seed(1)
    other = AnimationPipeline(spec.inference_model(pretrained.config).eval(), device="cpu")  # other weights
    with pytest.raises(SourceError, match="encoded by another model"):
        other.load_source(saved)
