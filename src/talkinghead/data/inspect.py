"""What ``talkinghead inspect DATASET`` shows: counts, problems and a contact sheet.

:func:`summarize` gathers the numbers of a prepared dataset (clips, frames and identities
per split, landmark backend, segmentation, the problems recorded in ``report.json``),
:func:`format_summary` prints them, and :func:`contact_sheet` draws sample frames with
their landmarks and segmentation so that a person can check the preparation at a glance.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from talkinghead.data.dataset_format import PreparedDataset
from talkinghead.data.rasterize import rasterize_landmarks
from talkinghead.data.segmentation_classes import colorize
from talkinghead.utils.atomic import atomic_path

# Contact sheet layout, in pixels: a label band above each row, gaps around the cells.
LABEL_HEIGHT = 18
GAP = 4
_BACKGROUND = (32, 32, 32)  # RGB of the sheet behind the cells
_SEGMENTATION_ALPHA = 0.55  # weight of the class colour over the frame


def _as_dataset(dataset: PreparedDataset | str | Path) -> PreparedDataset:
    return dataset if isinstance(dataset, PreparedDataset) else PreparedDataset(dataset)


def _count_problems(report: dict) -> dict:
    """Failed clips by reason and dropped frames by reason from a ``report.json``.

    Reads the layout ``talkinghead prepare`` writes: top-level ``clips_ok``,
    ``clips_failed``, ``frames_dropped``, ``failures_by_reason`` and ``clips`` (clip key ->
    record with ``status``, ``problems`` and ``dropped_frames`` lists). Totals are counted
    from the per-clip records when they are present, else taken from the top level.
    """
    records = list((report.get("clips") or {}).values())
    failed = [r for r in records if r.get("status") == "failed"]
    failures: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for record in failed:
        problems = record.get("problems") or []
        reason = problems[-1].get("reason", "unknown") if problems else "unknown"
        failures[reason] = failures.get(reason, 0) + 1
    for record in records:
        for frame in record.get("dropped_frames") or []:
            reason = frame.get("reason", "unknown")
            dropped[reason] = dropped.get(reason, 0) + 1
    if not records:
        failures = dict(report.get("failures_by_reason") or {})
    return {
        "clips_ok": sum(r.get("status") == "ok" for r in records) if records else report.get("clips_ok"),
        "clips_failed": len(failed) if records else int(report.get("clips_failed") or 0),
        "failures_by_reason": dict(sorted(failures.items())),
        "frames_dropped": (
            sum(int(r.get("frames_dropped", 0)) for r in records) if records else int(report.get("frames_dropped") or 0)
        ),
        "dropped_by_reason": dict(sorted(dropped.items())),
    }


def summarize(dataset: PreparedDataset | str | Path) -> dict:
    """Counts and settings of a prepared dataset, as a JSON-serialisable dict.

    Returns:
        ``root``, ``format_version``, ``size``, ``num_clips``, ``num_frames``,
        ``num_identities``, ``splits`` (split -> ``clips``/``frames``/``identities``),
        ``frames_per_clip`` (``min``/``mean``/``max``, None without clips), ``landmarks``
        (``backend``, ``num_dense``), ``segmentation`` (``source``, ``classes``) and
        ``problems`` (see :func:`_count_problems`; None when there is no ``report.json``).
    """
    dataset = _as_dataset(dataset)
    records = dataset.records
    splits = {}
    for split in sorted({r.split for r in records}):
        members = dataset.split(split)
        splits[split] = {
            "clips": len(members),
            "frames": sum(r.num_frames for r in members),
            "identities": len(dataset.identities(split)),
        }
    lengths = [r.num_frames for r in records]
    report = dataset.report()
    segmentation = dataset.info.get("segmentation", {})
    landmarks = dataset.info.get("landmarks", {})
    return {
        "root": str(dataset.root),
        "format_version": dataset.info.get("format_version"),
        "size": dataset.size,
        "num_clips": len(records),
        "num_frames": sum(lengths),
        "num_identities": len(dataset.identities()),
        "splits": splits,
        "frames_per_clip": (
            {"min": min(lengths), "mean": sum(lengths) / len(lengths), "max": max(lengths)} if lengths else None
        ),
        "landmarks": {"backend": landmarks.get("backend"), "num_dense": landmarks.get("num_dense")},
        "segmentation": {
            "source": segmentation.get("source"),
            "classes": list(segmentation.get("classes") or []),
        },
        "problems": _count_problems(report) if report is not None else None,
    }


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in counts.items())


def format_summary(summary: dict) -> str:
    """The human-readable text of a :func:`summarize` result."""
    lines = [
        f"dataset {summary['root']} (format {summary['format_version']}, {summary['size']} px frames)",
        f"  {summary['num_clips']} clips, {summary['num_frames']} frames, {summary['num_identities']} identities",
    ]
    if summary["splits"]:
        lines.append(f"  {'split':<8}{'clips':>8}{'frames':>9}{'identities':>12}")
        for name, counts in summary["splits"].items():
            lines.append(f"  {name:<8}{counts['clips']:>8}{counts['frames']:>9}{counts['identities']:>12}")
    if summary["frames_per_clip"]:
        f = summary["frames_per_clip"]
        lines.append(f"  frames per clip: min {f['min']}, mean {f['mean']:.1f}, max {f['max']}")
    landmarks = summary["landmarks"]
    lines.append(f"  landmarks: {landmarks['backend']} ({landmarks['num_dense']} dense points) + iBUG-68")
    segmentation = summary["segmentation"]
    if segmentation["source"] in (None, "none"):
        lines.append("  segmentation: none")
    else:
        classes = segmentation["classes"]
        lines.append(f"  segmentation: {segmentation['source']}, {len(classes)} classes: {', '.join(classes)}")
    problems = summary["problems"]
    if problems is None:
        lines.append("  problems: no report.json (the last prepare run did not finish?)")
    else:
        failed = f"  failed clips: {problems['clips_failed']}"
        if problems["failures_by_reason"]:
            failed += f" ({_format_counts(problems['failures_by_reason'])})"
        dropped = f"  dropped frames: {problems['frames_dropped']}"
        if problems["dropped_by_reason"]:
            dropped += f" ({_format_counts(problems['dropped_by_reason'])})"
        lines += [failed, dropped]
    return "\n".join(lines)


def _landmark_cell(frame: np.ndarray, points68: np.ndarray, stored_size: int, cell: int) -> np.ndarray:
    """(cell, cell, 3) frame with the FSTH-style landmark lines and white dots over it."""
    lines = rasterize_landmarks(points68, cell, "fsth", source_size=stored_size)  # (cell, cell, 3)
    alpha = lines.max(axis=2, keepdims=True).astype(np.float32) / 255.0  # (cell, cell, 1)
    image = frame.astype(np.float32) * (1.0 - alpha) + lines.astype(np.float32) * alpha
    image = np.round(image).astype(np.uint8)
    radius = cell // 256  # single-pixel dots on small cells, so the coloured lines stay visible
    points = np.asarray(points68)[:, :2] * (cell / stored_size)  # (68, 2)
    for x, y in np.round(points[np.isfinite(points).all(axis=1)]).astype(int):
        if radius:
            cv2.circle(image, (x, y), radius, (255, 255, 255), -1, cv2.LINE_AA)
        elif 0 <= x < cell and 0 <= y < cell:
            image[y, x] = 255
    return image


def _segmentation_cell(frame: np.ndarray, labels: np.ndarray, cell: int) -> np.ndarray:
    """(cell, cell, 3) frame with the class colours blended over every non-background pixel."""
    labels = cv2.resize(labels, (cell, cell), interpolation=cv2.INTER_NEAREST)  # (cell, cell)
    colours = colorize(labels).astype(np.float32)
    blended = frame.astype(np.float32) * (1 - _SEGMENTATION_ALPHA) + colours * _SEGMENTATION_ALPHA
    out = np.where((labels > 0)[..., None], blended, frame.astype(np.float32))
    return np.round(out).astype(np.uint8)


def _dense_cell(frame: np.ndarray, dense: np.ndarray, stored_size: int, cell: int) -> np.ndarray:
    """(cell, cell, 3) frame with the dense-style landmark connections over it (no segmentation)."""
    lines = rasterize_landmarks(dense, cell, "dense", source_size=stored_size)
    mask = lines.max(axis=2, keepdims=True) > 0
    return np.where(mask, lines, frame)


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.4) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def contact_sheet_size(num_rows: int, frames_per_clip: int, cell_size: int) -> tuple[int, int]:
    """(width, height) in pixels of a sheet of ``num_rows`` clips."""
    width = GAP + frames_per_clip * (2 * cell_size + GAP)
    height = GAP + num_rows * (LABEL_HEIGHT + cell_size + GAP)
    return width, height


def contact_sheet(
    dataset: PreparedDataset | str | Path,
    output_png: str | Path,
    num_clips: int = 8,
    frames_per_clip: int = 4,
    seed: int = 0,
    cell_size: int | None = None,
    split: str | None = None,
) -> Path:
    """Draw sample clips of a dataset into one PNG, written atomically.

    Each row is one clip, labelled ``identity/clip_id [split, frames]``; each of its
    ``frames_per_clip`` cells (frames evenly spaced over the clip) shows the frame with its
    68 landmarks overlaid, and beside it the segmentation colours blended over the frame
    (or, for datasets without segmentation, the dense landmark connections).

    Args:
        dataset: the prepared dataset or its folder.
        output_png: where to write the sheet.
        num_clips: rows; clips are drawn at random (``seed``) when there are more.
        frames_per_clip: frame cells per row; clips with fewer frames leave cells empty.
        seed: seed of the choice of clips.
        cell_size: side of one picture in pixels; default the frame size within [128, 256].
        split: draw clips of this split only; None for all.

    Returns:
        ``output_png`` as a Path.
    """
    dataset = _as_dataset(dataset)
    if num_clips < 1 or frames_per_clip < 1:
        raise ValueError(f"num_clips and frames_per_clip must be >= 1, got {num_clips} and {frames_per_clip}")
    records = dataset.split(split)
    if not records:
        raise ValueError(f"{dataset.root}: no clips{'' if split is None else f' in split {split!r}'} to draw")
    if len(records) > num_clips:
        chosen = np.random.default_rng(seed).choice(len(records), size=num_clips, replace=False)
        records = [records[i] for i in sorted(chosen)]
    cell = cell_size or min(max(dataset.size, 128), 256)
    has_segmentation = dataset.info.get("segmentation", {}).get("source") not in (None, "none")

    width, height = contact_sheet_size(len(records), frames_per_clip, cell)
    sheet = np.empty((height, width, 3), dtype=np.uint8)
    sheet[:] = _BACKGROUND
    for row, record in enumerate(records):
        clip = dataset.clip(record)
        top = GAP + row * (LABEL_HEIGHT + cell + GAP)
        _put_text(sheet, f"{record.key} [{record.split}, {record.num_frames} frames]", (GAP, top + LABEL_HEIGHT - 5))
        top += LABEL_HEIGHT
        count = min(frames_per_clip, record.num_frames)
        frames = np.unique(np.round(np.linspace(0, record.num_frames - 1, count)).astype(int))
        for column, index in enumerate(frames):
            stored = clip.frame(int(index))  # (H, W, 3) RGB
            stored_size = stored.shape[1]
            frame = cv2.resize(stored, (cell, cell), interpolation=cv2.INTER_AREA if stored_size > cell else cv2.INTER_CUBIC)
            left = GAP + column * (2 * cell + GAP)
            sheet[top : top + cell, left : left + cell] = _landmark_cell(
                frame, clip.landmarks68[index], stored_size, cell
            )
            if has_segmentation:
                right = _segmentation_cell(frame, clip.segmentation(int(index)), cell)
            else:
                right = _dense_cell(frame, clip.dense_landmarks[index], stored_size, cell)
            sheet[top : top + cell, left + cell : left + 2 * cell] = right
            _put_text(sheet, f"#{index}", (left + 3, top + 14))

    output_png = Path(output_png)
    with atomic_path(output_png, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{output_png}: OpenCV could not write the contact sheet PNG")
    return output_png
