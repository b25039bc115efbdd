"""Which test videos each K can use, and which report rows average the same videos.

A video takes part in a K-shot run only when it has at least K input frames (the shots
never include a hold-out frame). With a short clip, the K = 1 row averages more videos
than the K = 8 row, and comparing the two rows would compare different people. This module
says so before any compute (and refuses a K that no video can serve), and lets the report
mark rows computed over a different set of videos instead of ranking them together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from talkinghead.errors import TalkingHeadError

if TYPE_CHECKING:  # the report reads this module without loading the dataset code
    from talkinghead.data.episodes import EpisodeDataset

# Put after the video count of a row whose videos differ from the reference rows'.
OTHER_VIDEOS_MARK = "†"


class EvaluationSetupError(TalkingHeadError, ValueError):
    """An evaluation that cannot give the numbers it was asked for (checked before compute)."""


def input_frame_counts(dataset: "EpisodeDataset", indices: Sequence[int]) -> dict[str, int]:
    """Clip key -> number of frames its shots may be drawn from (hold-out frames excluded).

    Reads only the clips' metadata, so it runs before any frame is decoded.
    """
    counts = {}
    for index in indices:
        inputs = np.setdiff1d(dataset.input_frames(index), dataset.holdout_frames(index))
        counts[dataset.records[index].key] = int(len(inputs))
    return counts


def check_k_coverage(counts: Mapping[str, int], ks: Sequence[int]) -> list[str]:
    """Warnings for every K that leaves videos out; an error when a K keeps none.

    Args:
        counts: clip key -> input frames (see :func:`input_frame_counts`).
        ks: the requested numbers of shots.

    Returns:
        One warning per K that drops videos (naming how many and why).

    Raises:
        EvaluationSetupError: a K for which no video has enough input frames.
    """
    total = len(counts)
    most = max(counts.values(), default=0)
    warnings = []
    for k in sorted(set(ks)):
        kept = sum(1 for n in counts.values() if n >= k)
        if kept == 0:
            raise EvaluationSetupError(
                f"K = {k}: none of the {total} test video(s) has {k} input frames (the most is {most}); "
                f"leave K = {k} out of --k, or prepare the test set with more frames per clip "
                "(--frames-per-clip) or a smaller --holdout-fraction"
            )
        if kept < total:
            short = sorted(key for key, n in counts.items() if n < k)
            shown = ", ".join(short[:3]) + (", ..." if len(short) > 3 else "")
            warnings.append(
                f"K = {k}: {total - kept} of {total} videos have fewer than {k} input frames and are left out "
                f"({shown}); rows of this K average {kept} videos, so they are not comparable with rows over "
                f"all {total}"
            )
    return warnings


def run_video_set(run: Mapping[str, Any]) -> frozenset[str]:
    """The videos a run's summary averages (those with at least one evaluated frame)."""
    return frozenset(v.get("video") for v in run.get("videos", []) if v.get("frames"))


def reference_video_set(runs: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
    """The video set most rows share (the largest one on a tie); None without runs.

    Rows over this set are ranked together; every other row is marked.
    """
    sets = [run_video_set(run) for run in runs]
    if not sets:
        return None
    tally = Counter(sets)
    return max(tally, key=lambda s: (tally[s], len(s)))


def comparable_rows(runs: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Per run, whether it averages the reference set of videos (see :func:`reference_video_set`).

    Runs of results without per-video records (older or hand-made results) count as comparable.
    """
    if not any(run.get("videos") for run in runs):
        return [True] * len(runs)
    reference = reference_video_set(runs)
    return [run_video_set(run) == reference for run in runs]


def check_report_folder(output, inputs: Mapping[str, Any]) -> None:
    """Refuse, before any compute, a report folder that cannot or must not be written.

    Args:
        output: the ``--output`` folder.
        inputs: what the evaluation reads, by name (``{"dataset": ..., "checkpoint": ...}``;
            None values are ignored): never written over or into.

    Raises:
        OutputPathError: ``output`` is an existing file, or is, holds or lies inside an input.
        OutputWriteError: its place cannot take new files (read-only, full, forbidden).
    """
    from pathlib import Path

    from talkinghead.utils.output_guard import OutputPathError, check_output_location, check_writable

    output = Path(output)
    if output.exists() and not output.is_dir():
        raise OutputPathError(
            f"--output {output}: is an existing file, but evaluate writes a report folder there; "
            "give a folder path (e.g. eval/run1)"
        )
    check_output_location(output, inputs)
    check_writable(output / "results.json")
