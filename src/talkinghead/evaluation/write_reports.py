"""Every report of an evaluation at once: results.json, the CSVs, the plots and summary.md."""

from __future__ import annotations

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
    written["summary"] = write_summary_md(results, output_dir / REPORT_FILES["summary"], links=written)
    return written
