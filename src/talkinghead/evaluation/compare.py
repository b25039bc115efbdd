"""Reading results.json files and merging several runs, for ``talkinghead evaluate --compare``.

:func:`load_results` reads a ``results.json`` written by ``talkinghead evaluate`` (the results
dict described in :mod:`talkinghead.evaluation.report`) and checks its format, so a truncated
or foreign file fails with a message naming it. :func:`merge_results` puts the runs of several
evaluations into one results dict that :func:`~talkinghead.evaluation.write_reports.write_reports`
can render: display names are made unique, image paths absolute, and settings kept where the
inputs agree. Differences that make the numbers incomparable (dataset manifests, metric
networks, landmark backend, self vs cross reenactment, pose-bucket edges, metric directions)
come back as warnings and are listed in the merged summary.md.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from talkinghead.evaluation.coverage import check_report_folder
from talkinghead.evaluation.report import REPORT_FILES, RESULTS_FORMAT, metric_display_name, run_name
from talkinghead.errors import InputNotFoundError, TalkingHeadError


class ResultsFormatError(TalkingHeadError, ValueError):
    """A results file that cannot be read as a results dict; the message names the file."""


class LoadedResults(dict):
    """A results dict read by :func:`load_results`; ``path`` is the results.json it came from.

    It is a plain dict otherwise; :func:`merge_results` uses ``path`` to resolve the image
    paths, which are relative to that file's folder.
    """

    def __init__(self, data: Mapping[str, Any], path: Path):
        super().__init__(data)
        self.path = path


def _results_file(path: str | Path) -> Path:
    path = Path(path)
    return path / REPORT_FILES["results_json"] if path.is_dir() else path


def load_results(path: str | Path) -> LoadedResults:
    """Read a results.json (or the results.json inside a folder) written by ``talkinghead evaluate``.

    Returns the results dict, which also remembers the file it came from (``.path``).

    Raises:
        FileNotFoundError: no such file.
        ResultsFormatError: not JSON, or not a results dict of a format this version reads.
    """
    path = _results_file(path)
    if not path.is_file():
        raise InputNotFoundError(
            f"{path}: results file not found; pass the results.json written by `talkinghead evaluate` "
            "(or the folder holding it)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ResultsFormatError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            "the file may be truncated or not a results file — re-run `talkinghead evaluate`"
        ) from err
    except UnicodeDecodeError as err:
        raise ResultsFormatError(f"{path}: not a UTF-8 text file, so not a results.json") from err
    if not isinstance(data, dict):
        raise ResultsFormatError(f"{path}: holds a JSON {type(data).__name__}, expected a results object")
    if data.get("format") != RESULTS_FORMAT:
        raise ResultsFormatError(
            f"{path}: results format {data.get('format')!r}, this version reads format {RESULTS_FORMAT}; "
            "re-run `talkinghead evaluate` with this version"
        )
    for key, kind in (("settings", dict), ("metrics", dict), ("runs", list)):
        if not isinstance(data.get(key), kind):
            raise ResultsFormatError(f"{path}: missing or malformed {key!r} (expected a JSON {kind.__name__})")
    for index, run in enumerate(data["runs"]):
        if not isinstance(run, dict) or not isinstance(run.get("videos", []), list):
            raise ResultsFormatError(f"{path}: runs[{index}] is not a run object with a list of videos")
    return LoadedResults(data, path)


def _absolute(entry: dict[str, Any], keys: Sequence[str], base: Path | None) -> dict[str, Any]:
    if base is not None:
        for key in keys:
            if entry.get(key) and not Path(entry[key]).is_absolute():
                entry[key] = str((base / entry[key]).resolve())
    return entry


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def _differs(values: Mapping[str, Any]) -> bool:
    present = [value for value in values.values() if value is not None]
    return any(value != present[0] for value in present[1:])


def _describe(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}: {value}" for name, value in values.items())


def merge_results(results_list: Sequence[Mapping[str, Any] | str | Path],
                  names: Sequence[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Merge results of several evaluations into one results dict (``talkinghead evaluate --compare``).

    Runs are concatenated; when two runs would share a display name, their labels are prefixed
    with their input's name (``A/LSR``); each run records its input under ``source``. Metrics are
    the union, in order of first appearance. Settings the inputs agree on are kept; each input's
    own settings are recorded under ``settings["compared"]`` as ``{"name", "path", "settings"}``.
    Metric networks and skipped-metric reasons that differ are listed per input.

    Image paths: the qualitative paths of an input whose file is known (given as a path to a
    results.json or its folder, or a dict returned by :func:`load_results`) are made absolute,
    so the merged results can be written to any folder. A dict of unknown origin keeps its
    paths unchanged (relative to the folder its results.json came from).

    Differences that make numbers incomparable (dataset manifests, metric networks, landmark
    backend, self vs cross reenactment, pose-bucket edges, metric directions) are returned as
    warnings for the caller to show, and also listed under ``warnings`` of the merged dict,
    which summary.md shows.

    Args:
        results_list: results dicts, or paths to results.json files or their folders.
        names: one short name per input; by default the folder name of an input whose file is
            known, else ``input<N>``. Names must be unique.

    Returns:
        ``(merged results dict, warnings)``.
    """
    inputs = _read_inputs(results_list)
    names = _input_names(inputs, names)
    settings = {name: data.get("settings") or {} for name, (_, data) in zip(names, inputs)}
    warnings: list[str] = []
    metrics = _merged_metrics(names, inputs, warnings)
    warnings += _comparability_warnings(settings)
    merged_networks = _merged_networks(settings, warnings)
    merged_edges = _merged_edges(names, inputs, warnings)
    for name, (_, data) in zip(names, inputs):
        warnings += [f"{name}: {warning}" for warning in data.get("warnings") or []]
    merged_settings = _merged_settings(settings)
    merged_settings["metric_networks"] = merged_networks
    merged_settings["skipped_metrics"] = _merged_skipped(settings)
    merged_settings["compared"] = [
        {"name": name, "path": str(path) if path else None, "settings": settings[name]}
        for name, (path, _) in zip(names, inputs)
    ]
    runs, qualitative_inputs = _merged_runs(names, inputs)
    merged = {
        "format": RESULTS_FORMAT,
        "settings": merged_settings,
        "metrics": metrics,
        "pose_bucket_edges": merged_edges,
        "runs": runs,
        "qualitative_inputs": qualitative_inputs,
        "warnings": warnings,
    }
    return merged, list(warnings)


# An input: the results.json it came from (None for a dict of unknown origin) and its results dict.
_Input = tuple[Path | None, dict[str, Any]]


def _read_inputs(results_list: Sequence[Mapping[str, Any] | str | Path]) -> list[_Input]:
    """Each input as ``(its results.json or None, a copy of its results dict)``."""
    inputs: list[_Input] = []
    for item in results_list:
        if isinstance(item, (str, os.PathLike)):
            path = _results_file(item)
            inputs.append((path, dict(load_results(path))))
        else:
            inputs.append((getattr(item, "path", None), copy.deepcopy(dict(item))))
    if not inputs:
        raise ValueError("merge_results needs at least one results dict or results.json")
    return inputs


def _input_names(inputs: Sequence[_Input], names: Sequence[str] | None) -> list[str]:
    """The given names checked (one per input, unique), or each input's folder name made unique."""
    if names is None:
        defaults = [path.resolve().parent.name if path else f"input{index + 1}"
                    for index, (path, _) in enumerate(inputs)]
        return _unique_names(defaults)
    names = [str(name) for name in names]
    if len(names) != len(inputs):
        raise ValueError(f"{len(names)} names for {len(inputs)} results; give one name per input")
    if len(set(names)) != len(names):
        raise ValueError(f"names must be unique, got {names}")
    return names


def _merged_metrics(names: Sequence[str], inputs: Sequence[_Input], warnings: list[str]) -> dict[str, dict[str, Any]]:
    """The union of the inputs' metrics in order of first appearance; a direction they disagree on is warned."""
    metrics: dict[str, dict[str, Any]] = {}
    for name, (_, data) in zip(names, inputs):
        for metric, info in (data.get("metrics") or {}).items():
            if metric not in metrics:
                metrics[metric] = dict(info or {})
            elif (info or {}).get("higher_is_better", metrics[metric].get("higher_is_better")) != \
                    metrics[metric].get("higher_is_better"):
                warnings.append(f"{metric_display_name(metric)}: inputs disagree on whether higher is better")
    return metrics


def _comparability_warnings(settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Differences of data set, landmark backend or reenactment mode: the numbers are not comparable."""
    warnings = []
    hashes = {name: s.get("dataset_manifest_sha256") for name, s in settings.items()}
    datasets = {name: s.get("dataset") for name, s in settings.items()}
    if _differs(hashes):
        warnings.append(f"dataset manifests differ ({_describe(hashes)}); the numbers are not comparable")
    elif _differs(datasets):
        warnings.append(f"datasets differ ({_describe(datasets)}); the numbers are not comparable")
    for key, what in (("landmark_backend", "landmark backends"), ("cross", "reenactment modes (cross vs self)")):
        values = {name: s.get(key) for name, s in settings.items()}
        if _differs(values):
            warnings.append(f"{what} differ ({_describe(values)}); the numbers are not comparable")
    return warnings


def _merged_networks(settings: Mapping[str, Mapping[str, Any]], warnings: list[str]) -> dict[str, str]:
    """Each metric's network label; labels that differ are listed per input (and warned)."""
    merged: dict[str, str] = {}
    for metric in dict.fromkeys(m for s in settings.values() for m in (s.get("metric_networks") or {})):
        labels = {name: (s.get("metric_networks") or {}).get(metric) for name, s in settings.items()}
        labels = {name: label for name, label in labels.items() if label is not None}
        if _differs(labels):
            warnings.append(f"{metric_display_name(metric)} networks differ ({_describe(labels)}); "
                            "its numbers are not comparable")
            merged[metric] = "; ".join(f"{name}: {label}" for name, label in labels.items())
        else:
            merged[metric] = next(iter(labels.values()))
    return merged


def _merged_skipped(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Why each metric was skipped: one reason when every input agrees, else the reason per input."""
    merged: dict[str, str] = {}
    for metric in dict.fromkeys(m for s in settings.values() for m in (s.get("skipped_metrics") or {})):
        reasons = {name: (s.get("skipped_metrics") or {}).get(metric) for name, s in settings.items()}
        if all(reasons.values()) and not _differs(reasons):
            merged[metric] = next(iter(reasons.values()))
        else:
            merged[metric] = "; ".join(f"skipped in {name}: {reason}" for name, reason in reasons.items() if reason)
    return merged


def _merged_edges(names: Sequence[str], inputs: Sequence[_Input], warnings: list[str]) -> Any:
    """The pose-bucket edges the inputs share, or None (warned) when they differ."""
    edges = {name: data.get("pose_bucket_edges") for name, (_, data) in zip(names, inputs)}
    if _differs(edges):
        warnings.append(f"pose-bucket edges differ ({_describe(edges)}); the pose buckets are not comparable")
        return None
    return next((value for value in edges.values() if value is not None), None)


def _merged_settings(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The settings every input agrees on, and the union of their K."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(key for s in settings.values() for key in s):
        if key in ("ks", "metric_networks", "skipped_metrics", "compared"):
            continue
        values = [s.get(key) for s in settings.values()]
        if all(key in s for s in settings.values()) and all(value == values[0] for value in values):
            merged[key] = values[0]
    merged["ks"] = sorted({int(k) for s in settings.values() for k in s.get("ks") or []})
    return merged


def _merged_runs(names: Sequence[str], inputs: Sequence[_Input]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every input's runs, with unique display names and image paths that stay valid, and the qualitative inputs."""
    runs: list[dict[str, Any]] = []
    qualitative_inputs: dict[tuple[Any, Any], dict[str, Any]] = {}
    for name, (path, data) in zip(names, inputs):
        base = path.resolve().parent if path else None
        for run in data.get("runs") or []:
            run = copy.deepcopy(run)
            run["source"] = name
            run["qualitative"] = [_absolute(dict(entry), ["output"], base) for entry in run.get("qualitative") or []]
            runs.append(run)
        for entry in data.get("qualitative_inputs") or []:
            qualitative_inputs.setdefault((entry.get("video"), entry.get("frame")),
                                          _absolute(dict(entry), ["source", "ground_truth"], base))
    counts = Counter(run_name(run) for run in runs)
    for run in runs:
        if counts[run_name(run)] > 1:
            run["label"] = f"{run['source']}/{run.get('label') or run.get('method') or 'run'}"
    return runs, list(qualitative_inputs.values())


def compare_result_files(paths: Sequence[str | Path], output: str | Path) -> dict[str, Any]:
    """``talkinghead evaluate --compare``: merge results.json files for a report in ``output``.

    The report folder is checked first (it must not hold or be one of the inputs); each
    comparability warning is logged.

    Returns:
        The merged results dict.
    """
    check_report_folder(output, {"compared results": list(paths)})
    results, warnings = merge_results([load_results(path) for path in paths])
    for warning in warnings:
        logging.warning("%s", warning)
    return results
