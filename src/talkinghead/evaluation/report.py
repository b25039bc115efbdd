"""Turning evaluation results into the files researchers read: tables, CSVs, plots, summary.

The benchmark protocol produces one *results dict* (the content of ``results.json``)::

    {"format": 1,
     "settings": {"dataset": ..., "dataset_manifest_sha256": ..., "checkpoint": ...,
                  "checkpoint_sha256": ..., "seed": ..., "ks": [1, 4], "finetune_steps": ...,
                  "cross": bool, "landmark_backend": ..., "metric_networks": {metric: label},
                  "skipped_metrics": {metric: reason}, ...},
     "metrics": {name: {"higher_is_better": bool, "description": str}},   # column order
     "pose_bucket_edges": [low_max, medium_max] | None,
     "runs": [{"method", "label", "setting", "k", "videos": [...], "summary": {...},
               "pose_buckets": {...} | None, "qualitative": [...]}],
     "qualitative_inputs": [{"video", "frame", "source", "ground_truth"}],
     "warnings": [str]}                                                  # optional

Image paths in it are relative to the folder holding ``results.json`` (or absolute, after
:func:`talkinghead.evaluation.compare.merge_results`). :func:`~talkinghead.evaluation.write_reports.write_reports` writes every
report file into one folder, each atomically (a reader sees the old file or the new one,
never half of one).
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from talkinghead.evaluation.coverage import OTHER_VIDEOS_MARK, comparable_rows, run_video_set
from talkinghead.utils.atomic import atomic_write_json, atomic_write_text

RESULTS_FORMAT = 1
POSE_BUCKETS = ("low", "medium", "high")
MISSING = "—"

# File names inside an output folder; write_reports returns them under these keys.
REPORT_FILES = {
    "results_json": "results.json",
    "results_csv": "results.csv",
    "results_videos_csv": "results_videos.csv",
    "metric_vs_k": "metric_vs_k.png",
    "pose_buckets": "pose_buckets.png",
    "qualitative_grid": "qualitative_grid.png",
    "summary": "summary.md",
}

DISPLAY_NAMES = {
    "psnr": "PSNR",
    "ssim": "SSIM",
    "lpips": "LPIPS",
    "id_sim": "ID-SIM",
    "nmke": "NMKE",
    "fid": "FID",
    "warp_error": "E_warp",
}
# Directions of the known metrics, used when a results dict does not state one.
_HIGHER_IS_BETTER = {
    "psnr": True, "ssim": True, "lpips": False, "id_sim": True, "nmke": False, "fid": False, "warp_error": False,
}
# What one value describes (see evaluation/metrics/base.py), when the results dict does not say.
_KINDS = {
    "psnr": "frame", "ssim": "frame", "lpips": "frame", "id_sim": "frame", "nmke": "frame",
    "fid": "set", "warp_error": "video",
}
# Decimal places as the LSR tables print them; E_warp (~1e-4) in scientific notation.
_FORMATS = {
    "psnr": "{:.2f}", "ssim": "{:.3f}", "lpips": "{:.3f}", "id_sim": "{:.3f}", "nmke": "{:.3f}",
    "fid": "{:.2f}", "warp_error": "{:.1e}",
}
_KNOWN_SETTINGS = (
    "dataset", "dataset_manifest_sha256", "checkpoint", "checkpoint_sha256", "seed", "ks", "finetune_steps",
    "cross", "landmark_backend", "metric_networks", "skipped_metrics", "compared",
)


# ---------------------------------------------------------------------------------------------
# Small helpers shared with plots.py


def number(value: Any) -> float | None:
    """``value`` as a finite float; None for None, NaN, infinities, booleans and non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def metric_display_name(name: str) -> str:
    """The column name of a metric (``id_sim`` -> ``ID-SIM``; unknown names unchanged)."""
    return DISPLAY_NAMES.get(name, name)


def higher_is_better(results: Mapping[str, Any], name: str) -> bool | None:
    """The metric's direction from ``results["metrics"]``, else the known default; None if unknown."""
    info = results.get("metrics", {}).get(name) or {}
    direction = info.get("higher_is_better", _HIGHER_IS_BETTER.get(name))
    return None if direction is None else bool(direction)


def metric_header(results: Mapping[str, Any], name: str) -> str:
    """Display name with the direction arrow (``PSNR↑``, ``NMKE↓``)."""
    direction = higher_is_better(results, name)
    arrow = "" if direction is None else ("↑" if direction else "↓")
    return metric_display_name(name) + arrow


def format_value(name: str, value: Any) -> str:
    """A metric value as the tables print it; ``—`` when missing or not finite."""
    value = number(value)
    if value is None:
        return MISSING
    return _FORMATS.get(name, "{:.4g}").format(value)


def metric_kind(results: Mapping[str, Any], name: str) -> str:
    """``frame``, ``set`` or ``video``: stated in the results, known, or seen in the frame records."""
    kind = (results.get("metrics", {}).get(name) or {}).get("kind") or _KINDS.get(name)
    if kind:
        return kind
    for run in results.get("runs", []):
        for video in run.get("videos", []):
            if any(name in frame for frame in video.get("frames", [])):
                return "frame"
    return "set"


def run_name(run: Mapping[str, Any]) -> str:
    """A run's display name: ``LSR meta-learned (K=4)``; baselines omit the setting (``copy-source (K=1)``)."""
    label = run.get("label") or run.get("method") or "run"
    setting = run.get("setting")
    name = label if not setting or setting == "baseline" else f"{label} {setting}"
    k = run.get("k")
    return name if k is None else f"{name} (K={k})"


def slug(text: str) -> str:
    """Lower-case letters, digits and single hyphens only (safe in any file system)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def run_id(run: Mapping[str, Any]) -> str:
    """A file-system-safe id of a run: ``lsr-meta-learned-k4``, ``copy-source-k1``."""
    parts = [run.get("label") or run.get("method") or "run"]
    setting = run.get("setting")
    if setting and setting != "baseline":
        parts.append(setting)
    if run.get("k") is not None:
        parts.append(f"k{run['k']}")
    return slug("-".join(str(part) for part in parts)) or "run"


def pose_bucket_labels(edges: Sequence[float] | None) -> dict[str, str]:
    """Bucket names with their pose-difference ranges when the edges are known (``low (≤ 0.1)``)."""
    if not edges or len(edges) != 2:
        return {bucket: bucket for bucket in POSE_BUCKETS}
    low, medium = (f"{float(edge):.3g}" for edge in edges)
    return {"low": f"low (≤ {low})", "medium": f"medium ({low}–{medium}]", "high": f"high (> {medium})"}


def jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that strict JSON can hold: NaN/inf -> None, numpy scalars -> Python numbers."""
    if isinstance(obj, Mapping):
        return {str(key): jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(value) for value in obj]
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "ndim", None) == 0:  # numpy scalar or 0-d tensor
        return jsonable(item())
    return obj


# ---------------------------------------------------------------------------------------------
# Markdown tables


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, num_left: int) -> str:
    """A GitHub Markdown table; the first ``num_left`` columns left-aligned, the rest right-aligned."""
    align = [":---" if index < num_left else "---:" for index in range(len(header))]
    lines = ["| " + " | ".join(_cell(text) for text in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(text) for text in row) + " |" for row in rows]
    return "\n".join(lines)


def _best_mask(name: str, values: Sequence[float | None], direction: bool | None) -> list[bool]:
    """Which values to print in bold: those equal to the best one as printed (ties all bold)."""
    present = [value for value in values if value is not None]
    if direction is None or len(present) < 2:
        return [False] * len(values)
    best = format_value(name, max(present) if direction else min(present))
    return [value is not None and format_value(name, value) == best for value in values]


def _run_cells(run: Mapping[str, Any]) -> list[str]:
    k = run.get("k")
    label = run.get("label") or run.get("method") or "run"
    return [label, run.get("setting") or MISSING, MISSING if k is None else str(k)]


def summary_table(results: Mapping[str, Any], *, metrics: Sequence[str] | None = None) -> str:
    """The main results table in the layout of LSR Table 1 / Table 4, as Markdown.

    Rows are runs (method, setting, K), columns the metrics in ``results["metrics"]`` order (or
    ``metrics``) with their direction arrows, then the number of videos the row averages. The
    best value of each column is bold (ties all bold; nothing is bold with fewer than two
    values); missing values print as ``—``. Rows over another set of videos than most rows
    (a K that short videos could not serve) are marked ``†`` and never bold: their numbers
    describe other people.
    """
    names = list(results.get("metrics", {})) if metrics is None else list(metrics)
    runs = results.get("runs", [])
    comparable = comparable_rows(runs)
    columns = {name: [number((run.get("summary") or {}).get(name)) for run in runs] for name in names}
    ranked = {name: [value if ok else None for value, ok in zip(columns[name], comparable)] for name in names}
    bold = {name: _best_mask(name, ranked[name], higher_is_better(results, name)) for name in names}
    rows = []
    for index, run in enumerate(runs):
        row = _run_cells(run)
        for name in names:
            text = format_value(name, columns[name][index])
            row.append(f"**{text}**" if bold[name][index] else text)
        videos = (run.get("summary") or {}).get("num_videos")
        if videos is None and run.get("videos"):
            videos = len(run_video_set(run))
        row.append((MISSING if videos is None else str(videos)) + ("" if comparable[index] else f" {OTHER_VIDEOS_MARK}"))
        rows.append(row)
    header = ["Method", "Setting", "K"] + [metric_header(results, name) for name in names] + ["Videos"]
    return _markdown_table(header, rows, num_left=2)


def _bucket(run: Mapping[str, Any], bucket: str) -> tuple[float | None, int]:
    entry = (run.get("pose_buckets") or {}).get(bucket) or {}
    return number(entry.get("id_sim")), int(entry.get("count") or 0)


def pose_table(results: Mapping[str, Any]) -> str | None:
    """ID-SIM per head-pose-difference bucket (the data of LSR Fig. 9), as Markdown; None without pose data.

    Rows are runs, columns the low / medium / high buckets; each cell holds the mean ID-SIM and
    the number of frames it averages. The best value of each bucket is bold.
    """
    runs = results.get("runs", [])
    values = {bucket: [_bucket(run, bucket) for run in runs] for bucket in POSE_BUCKETS}
    if all(value is None for bucket in POSE_BUCKETS for value, _ in values[bucket]):
        return None
    labels = pose_bucket_labels(results.get("pose_bucket_edges"))
    bold = {bucket: _best_mask("id_sim", [value for value, _ in values[bucket]], True) for bucket in POSE_BUCKETS}
    rows = []
    for index, run in enumerate(runs):
        row = _run_cells(run)
        for bucket in POSE_BUCKETS:
            value, count = values[bucket][index]
            if value is None:
                row.append(MISSING)
                continue
            text = format_value("id_sim", value)
            row.append(f"{f'**{text}**' if bold[bucket][index] else text} (n={count})")
        rows.append(row)
    header = ["Method", "Setting", "K"] + [f"ID-SIM↑ {labels[bucket]}" for bucket in POSE_BUCKETS]
    return _markdown_table(header, rows, num_left=2)


# ---------------------------------------------------------------------------------------------
# summary.md


def _code(value: Any) -> str:
    return MISSING if value in (None, "") else f"`{value}`"


def _settings_lines(settings: Mapping[str, Any], edges: Sequence[float] | None) -> list[str]:
    """The settings that decide whether two reports are comparable, one bullet each.

    In merged results a setting the inputs disagree on is absent; it then reads "varies",
    and the per-input values are listed under "Compared results".
    """
    absent = "varies (see Compared results)" if settings.get("compared") else MISSING

    def show(key: str, code: bool = False) -> str:
        if key not in settings:
            return absent
        return _code(settings[key]) if code else str(settings[key])

    lines = [f"- Dataset: {show('dataset', True)} (manifest sha256 {show('dataset_manifest_sha256', True)})"]
    if "checkpoint" in settings and settings["checkpoint"] is None:
        lines.append("- Checkpoint: none (baselines only)")
    else:
        lines.append(f"- Checkpoint: {show('checkpoint', True)} (sha256 {show('checkpoint_sha256', True)})")
    ks = settings.get("ks")
    lines += [
        f"- Seed: {show('seed')}",
        f"- K (source frames): {', '.join(str(k) for k in ks) if ks else MISSING}",
        f"- Fine-tuning steps: {show('finetune_steps')}",
    ]
    if "cross" not in settings or settings["cross"] is None:
        lines.append(f"- Reenactment: {absent}")
    elif settings["cross"]:
        lines.append("- Reenactment: cross-identity (the driver is another person)")
    else:
        lines.append("- Reenactment: self (each video's hold-out frames are reproduced from their own landmarks)")
    lines.append(f"- Landmark backend: {show('landmark_backend', True)}")
    if edges and len(edges) == 2:
        labels = pose_bucket_labels(edges)
        lines.append(f"- Pose-difference buckets: {', '.join(labels[bucket] for bucket in POSE_BUCKETS)}")
    return lines


def _files_section(path: Path, links: Mapping[str, Path]) -> list[str]:
    lines = []
    titles = {
        "metric_vs_k": "Metrics against K",
        "pose_buckets": "ID-SIM by head-pose difference",
        "qualitative_grid": "Qualitative comparison",
    }
    for key, title in titles.items():
        if key in links:
            lines += [f"### {title}", "", f"![{title}]({_relative(links[key], path.parent)})", ""]
    data = [f"[{links[key].name}]({_relative(links[key], path.parent)})"
            for key in ("results_json", "results_csv", "results_videos_csv") if key in links]
    if data:
        lines += ["Data: " + ", ".join(data), ""]
    return lines


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def summary_markdown(results: Mapping[str, Any], *, links: Mapping[str, Path] | None = None,
                     base: Path | None = None) -> str:
    """The text of summary.md; ``links`` maps REPORT_FILES keys to files to link (relative to ``base``)."""
    base = Path(base or ".")
    settings = results.get("settings") or {}
    lines = ["# Evaluation report", "", "## Settings", ""]
    lines += _settings_lines(settings, results.get("pose_bucket_edges"))
    networks = settings.get("metric_networks") or {}
    lines += ["", "### Metric networks", ""]
    lines += [f"- {metric_display_name(name)}: {label}" for name, label in networks.items()] or ["- none recorded"]
    others = {key: value for key, value in settings.items() if key not in _KNOWN_SETTINGS}
    if others:
        lines += ["", "### Other settings", ""]
        lines += [f"- {key}: `{json.dumps(jsonable(value), ensure_ascii=False)}`" for key, value in others.items()]

    metrics = results.get("metrics") or {}
    lines += ["", "## Metrics", ""]
    lines += [f"- {metric_header(results, name)}: {(info or {}).get('description') or MISSING}"
              for name, info in metrics.items()] or ["- none"]
    skipped = settings.get("skipped_metrics") or {}
    lines += ["", "## Skipped metrics", ""]
    lines += [f"- {metric_display_name(name)}: {reason}" for name, reason in skipped.items()] or ["none"]

    warnings = results.get("warnings") or []
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {warning}" for warning in warnings]
    compared = settings.get("compared") or []
    if compared:
        lines += ["", "## Compared results", ""]
        for entry in compared:
            source = entry.get("settings") or {}
            where = f" (`{entry['path']}`)" if entry.get("path") else ""
            ks = source.get("ks")
            lines.append(
                f"- {entry.get('name')}{where}: dataset {_code(source.get('dataset'))} "
                f"(manifest {_code(source.get('dataset_manifest_sha256'))}), checkpoint "
                f"{_code(source.get('checkpoint'))} (sha256 {_code(source.get('checkpoint_sha256'))}), "
                f"seed {source.get('seed', MISSING)}, K {', '.join(map(str, ks)) if ks else MISSING}"
            )

    lines += ["", "## Results", "", summary_table(results), ""]
    lines.append(
        "Means over all evaluated frames (frames without a value, e.g. no face found, are left out); "
        "FID over all outputs of a run; E_warp the mean over videos. Bold: best in its column; "
        f"{MISSING}: not measured; Videos: how many videos the row averages."
    )
    if not all(comparable_rows(results.get("runs", []))):
        lines.append(
            f"{OTHER_VIDEOS_MARK} This row averages another set of videos than the other rows (videos with fewer "
            "input frames than K are left out, see Warnings): do not compare it with them; it is never bold."
        )
    poses = pose_table(results)
    if poses is not None:
        lines += ["", "## ID-SIM by head-pose difference", "", poses, "",
                  "Frames grouped by the head-pose difference between the driver and the source frames "
                  "(LSR Fig. 9); n = frames in the bucket."]
    figures = _files_section(base / "summary.md", links or {})
    if figures:
        lines += ["", "## Figures and data", ""] + figures
    return "\n".join(lines).rstrip() + "\n"


def write_summary_md(results: Mapping[str, Any], path: str | Path, *,
                     links: Mapping[str, str | Path] | None = None) -> Path:
    """Write summary.md: settings, metric networks, skipped metrics, tables and figure links.

    Args:
        results: the results dict.
        path: the Markdown file to write (atomically).
        links: report files to link, by REPORT_FILES key; by default the plot, grid and data
            files of REPORT_FILES that exist beside ``path``.
    """
    path = Path(path)
    if links is None:
        found = {key: path.parent / name for key, name in REPORT_FILES.items() if key != "summary"}
        links = {key: file for key, file in found.items() if file.is_file()}
    links = {key: Path(file) for key, file in links.items()}
    atomic_write_text(path, summary_markdown(results, links=links, base=path.parent))
    return path


# ---------------------------------------------------------------------------------------------
# CSV files


def _csv_value(value: Any) -> str:
    """A CSV cell: empty for None / NaN; floats in full precision so they read back exactly."""
    if value is None:
        return ""
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = number(value)
        return "" if value is None else repr(value)
    return str(value)


def frame_metrics(results: Mapping[str, Any]) -> list[str]:
    """The metrics of ``results["metrics"]`` that have one value per frame, in column order."""
    return [name for name in results.get("metrics", {}) if metric_kind(results, name) == "frame"]


def _write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_csv_value(value) for value in row] for row in rows)
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def write_results_csv(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write one row per (run, video, frame): run columns, every per-frame metric, pose difference and bucket.

    Columns: method, label, setting, k, video, identity, frame, the per-frame metrics in
    ``results["metrics"]`` order, pose_difference, pose_bucket. Missing values are empty cells.
    """
    metrics = frame_metrics(results)
    header = ["method", "label", "setting", "k", "video", "identity", "frame", *metrics, "pose_difference",
              "pose_bucket"]
    rows = []
    for run in results.get("runs", []):
        for video in run.get("videos", []):
            for frame in video.get("frames", []):
                rows.append([run.get("method"), run.get("label"), run.get("setting"), run.get("k"),
                             video.get("video"), video.get("identity"), frame.get("frame"),
                             *(frame.get(name) for name in metrics),
                             frame.get("pose_difference"), frame.get("pose_bucket")])
    return _write_csv(path, header, rows)


def write_videos_csv(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write one row per (run, video): the per-video E_warp and the number of frames evaluated.

    Columns: run (display name), method, label, setting, k, video, identity, source_frames
    (space-separated frame indices), warp_error, num_frames.
    """
    header = ["run", "method", "label", "setting", "k", "video", "identity", "source_frames", "warp_error",
              "num_frames"]
    rows = []
    for run in results.get("runs", []):
        for video in run.get("videos", []):
            sources = " ".join(str(index) for index in video.get("source_frames") or [])
            rows.append([run_name(run), run.get("method"), run.get("label"), run.get("setting"), run.get("k"),
                         video.get("video"), video.get("identity"), sources, video.get("warp_error"),
                         len(video.get("frames", []))])
    return _write_csv(path, header, rows)
