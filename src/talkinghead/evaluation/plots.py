"""Figures of an evaluation report: metrics against K, ID-SIM per pose bucket, a qualitative grid.

Each function takes a results dict (see :mod:`talkinghead.evaluation.report`), writes one PNG
atomically and returns its path, or returns None (writing nothing) when there is nothing to
draw. matplotlib is imported inside the functions, with the Agg backend, so importing this
module costs nothing and works without a display.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkinghead.evaluation.report import (
    POSE_BUCKETS,
    higher_is_better,
    metric_display_name,
    number,
    pose_bucket_labels,
    run_name,
)
from talkinghead.utils.atomic import atomic_path

log = logging.getLogger(__name__)

DPI = 120
# LSR Fig. 6 draws meta-learned results dotted and fine-tuned ones solid; baselines are dashed.
SETTING_LINESTYLES = {"meta-learned": ":", "fine-tuned": "-", "baseline": "--"}
BLANK_GREY = 235  # a grid cell for a run without an output for that frame
BACKGROUND = 255


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    # A bare Figure (no pyplot) keeps no global state between calls.
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return path


def _colors(count: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(index % cmap.N) for index in range(count)]


def _arrow(results: Mapping[str, Any], name: str) -> str:
    direction = higher_is_better(results, name)
    return "" if direction is None else (" ↑" if direction else " ↓")


def _line_name(run: Mapping[str, Any]) -> str:
    label = run.get("label") or run.get("method") or "run"
    setting = run.get("setting")
    return label if not setting or setting == "baseline" else f"{label} {setting}"


def plot_metric_vs_k(results: Mapping[str, Any], path: str | Path,
                     metrics: Sequence[str] | None = None) -> Path | None:
    """Each metric against the number of source frames K (LSR Fig. 6); None when no run has a value.

    One subplot per metric that has values, K on a log2 axis with ticks at the evaluated Ks, one
    line per (method label, setting): meta-learned dotted, fine-tuned solid, baselines dashed,
    one colour per method label. A single K shows as markers.
    """
    runs = [run for run in results.get("runs", []) if run.get("k") is not None]
    names = list(results.get("metrics", {})) if metrics is None else list(metrics)
    names = [name for name in names
             if any(number((run.get("summary") or {}).get(name)) is not None for run in runs)]
    if not names:
        return None
    ks = sorted({int(run["k"]) for run in runs})
    lines: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        lines.setdefault(_line_name(run), []).append(run)
    labels = list(dict.fromkeys(run.get("label") or run.get("method") or "run" for run in runs))
    color = dict(zip(labels, _colors(len(labels))))

    from matplotlib.ticker import FixedLocator, NullLocator

    num_cols = min(len(names), 3)
    num_rows = math.ceil(len(names) / num_cols)
    figure = _figure(4.2 * num_cols, 3.3 * num_rows + 0.4 * math.ceil(len(lines) / 3))
    axes = figure.subplots(num_rows, num_cols, squeeze=False).ravel()
    handles: dict[str, Any] = {}
    for ax, name in zip(axes, names):
        for line, members in lines.items():
            points = sorted((int(run["k"]), number((run.get("summary") or {}).get(name))) for run in members)
            points = [(k, value) for k, value in points if value is not None]
            if not points:
                continue
            first = members[0]
            (handle,) = ax.plot(
                [k for k, _ in points], [value for _, value in points],
                linestyle=SETTING_LINESTYLES.get(first.get("setting"), "-."), marker="o", markersize=5,
                linewidth=1.8, color=color[first.get("label") or first.get("method") or "run"], label=line,
            )
            handles.setdefault(line, handle)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlim(ks[0] / 1.5, ks[-1] * 1.5)
        ax.set_xlabel("K (source frames)")
        ax.set_ylabel(metric_display_name(name) + _arrow(results, name))
        ax.set_title(metric_display_name(name))
        ax.grid(True, alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                  ncols=min(len(handles), 3), frameon=False)
    return _save(figure, path)


def plot_pose_buckets(results: Mapping[str, Any], path: str | Path) -> Path | None:
    """Grouped bars of mean ID-SIM per head-pose-difference bucket, one bar per run (LSR Fig. 9).

    Returns None when no run has pose-bucket data. Each bar is annotated with its frame count
    when there are few enough runs to read it.
    """
    rows = []
    for run in results.get("runs", []):
        buckets = run.get("pose_buckets") or {}
        values = [number((buckets.get(bucket) or {}).get("id_sim")) for bucket in POSE_BUCKETS]
        counts = [int((buckets.get(bucket) or {}).get("count") or 0) for bucket in POSE_BUCKETS]
        if any(value is not None for value in values):
            rows.append((run_name(run), values, counts))
    if not rows:
        return None
    width = 0.8 / len(rows)
    figure = _figure(max(6.0, 1.5 + 0.45 * len(rows) * len(POSE_BUCKETS)), 4.2 + 0.25 * math.ceil(len(rows) / 3))
    ax = figure.subplots()
    for index, ((name, values, counts), color) in enumerate(zip(rows, _colors(len(rows)))):
        xs = [group + (index - (len(rows) - 1) / 2) * width for group in range(len(POSE_BUCKETS))]
        heights = [np.nan if value is None else value for value in values]
        bars = ax.bar(xs, heights, width * 0.95, color=color, label=name)
        if len(rows) <= 6:
            texts = [f"n={count}" if value is not None else "" for value, count in zip(values, counts)]
            ax.bar_label(bars, labels=texts, fontsize=7, padding=2)
    labels = pose_bucket_labels(results.get("pose_bucket_edges"))
    ax.set_xticks(range(len(POSE_BUCKETS)), [labels[bucket] for bucket in POSE_BUCKETS])
    ax.set_xlabel("head-pose difference between driver and source frames")
    ax.set_ylabel("ID-SIM ↑")
    ax.set_title("ID-SIM by head-pose difference")
    ax.grid(True, axis="y", alpha=0.3)
    ax.margins(y=0.12)
    figure.legend(loc="outside lower center", ncols=min(len(rows), 3), frameon=False)
    return _save(figure, path)


# ---------------------------------------------------------------------------------------------
# Qualitative grid (OpenCV, BGR images)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TITLE_LINES = 3


def _font_scale(cell: int) -> float:
    return max(0.3, 0.38 * cell / 128)


def _line_height(cell: int) -> int:
    return max(10, round(13 * cell / 128))


def header_height(cell: int) -> int:
    """Height in pixels of the title band above a qualitative grid of ``cell``-pixel cells."""
    return _TITLE_LINES * _line_height(cell) + 8


def _ascii(text: str) -> str:
    # Hershey fonts draw ASCII only.
    return text.replace("—", "-").replace("–", "-").encode("ascii", "replace").decode("ascii")


def _text_width(text: str, cell: int) -> int:
    return cv2.getTextSize(text, _FONT, _font_scale(cell), 1)[0][0]


def _wrap(text: str, cell: int) -> list[str]:
    """``text`` broken into at most _TITLE_LINES lines that fit a cell, the last shortened with ``..``."""
    room = cell - 12  # a visible gap between neighbouring titles
    words = _ascii(text).split() or [""]
    lines: list[str] = []
    for word in words:
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and _text_width(candidate, cell) <= room:
            lines[-1] = candidate
        else:
            lines.append(word)
    if len(lines) > _TITLE_LINES:
        lines = lines[: _TITLE_LINES - 1] + [" ".join(lines[_TITLE_LINES - 1:])]
    for index, line in enumerate(lines):
        while _text_width(line, cell) > room and len(line) > 2:
            line = line[:-3] + ".."
        lines[index] = line
    return lines


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int], cell: int, color: tuple[int, int, int]) -> None:
    cv2.putText(image, text, origin, _FONT, _font_scale(cell), color, 1, cv2.LINE_AA)


def _fit(image: np.ndarray, cell: int) -> np.ndarray:
    """``image`` scaled to fit a ``cell`` x ``cell`` square, centred on the background colour."""
    height, width = image.shape[:2]
    scale = cell / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.full((cell, cell, 3), BACKGROUND, np.uint8)
    top, left = (cell - size[1]) // 2, (cell - size[0]) // 2
    out[top:top + size[1], left:left + size[0]] = resized
    return out


def _load_cell(base: Path, relative: str | None, cell: int) -> np.ndarray:
    """The image at ``base / relative`` fitted to a cell; a blank cell when there is none."""
    blank = np.full((cell, cell, 3), BLANK_GREY, np.uint8)
    if not relative:
        return blank
    file = base / relative
    image = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if image is None:
        log.warning("qualitative grid: cannot read %s; leaving its cell marked missing", file)
        _put_text(blank, "missing", (4, cell // 2), cell, (0, 0, 200))
        return blank
    return _fit(image, cell)


def qualitative_grid(results: Mapping[str, Any], output_dir: str | Path, path: str | Path, *,
                     max_rows: int = 6, cell: int = 128) -> Path | None:
    """A grid of qualitative results: one row per (video, frame), one column per image kind.

    Columns are source | ground truth | the output of each run that has an output for one of
    the rows, titled in a header band of :func:`header_height` pixels; a run without an output
    for a row gets a blank grey cell. Rows are the first ``max_rows`` entries of
    ``results["qualitative_inputs"]`` that some run has an output for; the video and frame are
    written under the source image. Image paths are read relative to ``output_dir`` (absolute
    paths are used as they are). The PNG measures ``header_height(cell) + rows * cell`` by
    ``columns * cell`` pixels.

    Returns:
        ``path``, or None (nothing written) when no run has a qualitative output.
    """
    base = Path(output_dir)
    outputs = []
    for run in results.get("runs", []):
        listed = run.get("qualitative") or []
        found = {(entry.get("video"), entry.get("frame")): entry.get("output") for entry in listed}
        outputs.append((run, found))
    entries = [entry for entry in results.get("qualitative_inputs") or []
               if any((entry.get("video"), entry.get("frame")) in found for _, found in outputs)][:max_rows]
    if not entries:
        return None
    keys = [(entry.get("video"), entry.get("frame")) for entry in entries]
    shown = [(run, found) for run, found in outputs if any(key in found for key in keys)]
    titles = ["source", "ground truth"] + [run_name(run) for run, _ in shown]

    top = header_height(cell)
    grid = np.full((top + len(entries) * cell, len(titles) * cell, 3), BACKGROUND, np.uint8)
    for column, title in enumerate(titles):
        for line_index, line in enumerate(_wrap(title, cell)):
            x = column * cell + max(3, (cell - _text_width(line, cell)) // 2)
            _put_text(grid, line, (x, 4 + (line_index + 1) * _line_height(cell) - 3), cell, (0, 0, 0))
    for row, (entry, key) in enumerate(zip(entries, keys)):
        cells = [_load_cell(base, entry.get("source"), cell), _load_cell(base, entry.get("ground_truth"), cell)]
        cells += [_load_cell(base, found.get(key), cell) for _, found in shown]
        # Name the row under its source image, on a dark band so it reads over any picture.
        band = _line_height(cell) + 2
        cells[0][cell - band:] = (cells[0][cell - band:] * 0.35).astype(np.uint8)
        label = _ascii(f"{key[0]} #{key[1]}")
        while _text_width(label, cell) > cell - 6 and len(label) > 3:
            label = ".." + label[3:]  # keep the end: the clip and the frame
        _put_text(cells[0], label, (3, cell - 4), cell, (255, 255, 255))
        y = top + row * cell
        grid[y:y + cell] = np.concatenate(cells, axis=1)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise OSError(f"{path}: OpenCV could not write the qualitative grid")
    return path
