"""Every report of an evaluation at once: results.json, the CSVs, the plots and summary.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from talkinghead.evaluation import plots
from talkinghead.evaluation.report import (
    REPORT_FILES,
    jsonable,
    write_results_csv,
    write_summary_md,
    write_videos_csv,
)
from talkinghead.utils.atomic import atomic_write_json
from talkinghead.utils.output_guard import output_errors


def write_reports(results: Mapping[str, Any], output_dir: str | Path) -> dict[str, Path]:
    """Write every report of ``results`` into ``output_dir`` and return the written files by name.

    Writes results.json (strict JSON: NaN becomes null), results.csv, results_videos.csv,
    metric_vs_k.png and pose_buckets.png (when there is data for them), qualitative_grid.png
    (when there are qualitative outputs) and summary.md linking them; keys as in REPORT_FILES.
    Image paths in ``results`` are read relative to ``output_dir``.
    """
    output_dir = Path(output_dir)
    with output_errors(output_dir):
        return _write_reports(jsonable(results), output_dir)


def _write_reports(results: Mapping[str, Any], output_dir: Path) -> dict[str, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["results_json"] = output_dir / REPORT_FILES["results_json"]
    atomic_write_json(written["results_json"], results)
    written["results_csv"] = write_results_csv(results, output_dir / REPORT_FILES["results_csv"])
    written["results_videos_csv"] = write_videos_csv(results, output_dir / REPORT_FILES["results_videos_csv"])
    figures = {
        "metric_vs_k": plots.plot_metric_vs_k(results, output_dir / REPORT_FILES["metric_vs_k"]),
        "pose_buckets": plots.plot_pose_buckets(results, output_dir / REPORT_FILES["pose_buckets"]),
        "qualitative_grid": plots.qualitative_grid(results, output_dir, output_dir / REPORT_FILES["qualitative_grid"]),
    }
    written.update({key: file for key, file in figures.items() if file is not None})
    for key, file in figures.items():
        if file is None:  # no data for it this time: an earlier run's figure would mislead
            (output_dir / REPORT_FILES[key]).unlink(missing_ok=True)
    _remove_unreferenced_images(results, output_dir)
    written["summary"] = write_summary_md(results, output_dir / REPORT_FILES["summary"], links=written)
    return written


def _remove_unreferenced_images(results: Mapping[str, Any], output_dir: Path) -> None:
    """Delete files under ``output_dir/qualitative`` that ``results`` does not name.

    A re-run into the same folder (other K, other checkpoint) would otherwise leave the
    earlier run's qualitative images beside the new report. Only that sub-folder, which the
    protocol writes, is touched.
    """
    folder = output_dir / "qualitative"
    if not folder.is_dir():
        return
    named = []
    for run in results.get("runs") or []:
        named += [entry.get("output") for entry in run.get("qualitative") or []]
    for entry in results.get("qualitative_inputs") or []:
        named += [entry.get("source"), entry.get("ground_truth")]
    kept = {os.path.realpath(output_dir / name) for name in named if isinstance(name, str)}
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and os.path.realpath(path) not in kept:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
