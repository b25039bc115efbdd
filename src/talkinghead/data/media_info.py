"""What every frame source answers, whatever it reads: a video file, an image sequence or one photo.

* ``info`` — a :class:`VideoInfo` with the upright size, frame count, frame rate and the
  presentation time of every frame, found without decoding the whole source;
* ``frames(indices)`` — an iterator of ``(index, time_s, rgb)`` tuples (:data:`FrameTuple`),
  where ``rgb`` is an upright ``(H, W, 3)`` uint8 array, one frame at a time.

Here are that contract (:class:`FrameSource`), its errors (:class:`VideoReadError`), the
warnings a source that is not what its container claims gives (:func:`media_warnings`), the
file kinds by suffix and the choice of frames spread in time (:func:`sample_frame_indices`).
The readers are :mod:`talkinghead.data.video` (video files) and
:mod:`talkinghead.data.image_sequence` (photos, folders and lists of frames);
:func:`talkinghead.data.frame_source.open_frame_source` picks one for a path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Protocol, Sequence, Union

import numpy as np

from talkinghead.errors import TalkingHeadError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})

FrameTuple = tuple[int, float, np.ndarray]  # (frame index, time in s, (H, W, 3) uint8 RGB)
PathLike = Union[str, os.PathLike]


class VideoReadError(TalkingHeadError, RuntimeError):
    """A video or image that could not be read (completely or partly).

    Attributes:
        path: the file at fault.
        reason: short machine-friendly cause: ``"missing"``, ``"unreadable"``,
            ``"no_video_stream"``, ``"empty"``, ``"undecodable"``, ``"truncated"`` or
            ``"too_few_frames"``.
        frames_read: how many frames (from the first one on) were decoded before the
            failure; frames with a smaller index were yielded if they were requested.
    """

    def __init__(self, path: PathLike, reason: str, message: str, frames_read: int = 0) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.reason = reason
        self.frames_read = frames_read


@dataclass
class VideoInfo:
    """What is known about a frame source before decoding it.

    Attributes:
        path: the video file, or the folder (or first file) of an image sequence.
        width: upright width in pixels (after applying ``rotation``).
        height: upright height in pixels (after applying ``rotation``).
        fps: average frame rate, ``(num_frames - 1) / (last time - first time)``.
        num_frames: frames counted by demuxing the stream (not container metadata).
        duration: ``num_frames / fps`` in seconds.
        rotation: counter-clockwise degrees (0, 90, 180 or 270) the stored frames are
            turned by to display upright; the readers apply it.
        timestamps: presentation time in seconds of every frame, in presentation order,
            as stored in the container (usually starting at 0).
        has_audio: whether the container has an audio stream.
        is_grayscale: whether the source pixel format is luma-only (e.g. ``gray``).
            Note that FFmpeg's H.264 decoder reports monochrome (4:0:0) streams as
            ``yuv420p``, so those are not flagged.
        truncated: why the stream breaks off before its end (a corrupt or cut packet,
            a demuxer error, or frames missing from the duration the container states),
            or None for a complete stream.
        stated_frames: the frame count the container states (its index, or its stated
            duration times the nominal rate), or None when it states none.
        retimed: why the stored timestamps were replaced by ``index / nominal rate``
            (they repeat or do not advance), or None when they are used as stored.
        lost_frames: frames the container hides (its edit list, built on the broken
            timestamps, marks them as discarded) that could not be recovered, so the clip
            lacks them; 0 normally (MP4/MOV files are read with the edit list ignored).
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    rotation: int = 0
    timestamps: list[float] = field(default_factory=list)
    has_audio: bool = False
    is_grayscale: bool = False
    truncated: str | None = None
    stated_frames: int | None = None
    retimed: str | None = None
    lost_frames: int = 0


def media_warnings(info: VideoInfo) -> list[str]:
    """One line per way ``info``'s source is not what its container claims (empty: it is).

    A stream that ends early names the file and both frame counts; broken timestamps name
    the rate used instead.
    """
    warnings = []
    if info.truncated:
        stated = f" of the {info.stated_frames} its container states" if info.stated_frames else ""
        warnings.append(
            f"{info.path}: the video ends early: {info.num_frames} frames decoded{stated} ({info.truncated}); "
            "only those frames are used. Re-download or re-encode the file to get the rest"
        )
    if info.retimed:
        warnings.append(
            f"{info.path}: its frame timestamps are broken ({info.retimed}); using the stream's nominal rate "
            f"of {info.fps:g} frames/s instead"
        )
    if info.lost_frames:
        warnings.append(
            f"{info.path}: {info.lost_frames} of its {info.num_frames + info.lost_frames} frames cannot be "
            f"read (the container hides them by its broken timestamps); only {info.num_frames} frames are "
            "used. Re-encode the file to get them all"
        )
    return warnings


def missing_error(path: Path, what: str) -> VideoReadError:
    return VideoReadError(path, "missing", f"{path}: {what} does not exist; check the path.")


def checked_indices(indices: Sequence[int] | None, source: Path) -> list[int] | None:
    """Sorted unique non-negative frame indices, or ``None`` for all frames."""
    if indices is None:
        return None
    checked = set()
    for index in indices:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{source}: frame index {index!r} is not an integer.")
        if index < 0:
            raise ValueError(f"{source}: frame index {index} is negative; indices count from 0.")
        checked.add(int(index))
    return sorted(checked)


def sample_frame_indices(
    timestamps: Sequence[float], count: int | Literal["all"]
) -> list[int]:
    """Pick ``count`` frames spread uniformly in time (not in index).

    The target times run evenly from the first to the last frame time (the middle for
    ``count == 1``); each target takes the nearest frame, nudged to the next free one so
    that the result has exactly ``count`` unique indices.

    Args:
        timestamps: frame times in seconds, in presentation order (non-decreasing).
        count: how many frames to pick, or ``"all"``.

    Returns:
        Sorted unique indices; every index when the clip has no more than ``count`` frames.
    """
    num_frames = len(timestamps)
    if count == "all":
        return list(range(num_frames))
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive integer or 'all', got {count!r}.")
    if num_frames <= count:
        return list(range(num_frames))
    times = np.asarray(timestamps, dtype=np.float64)
    if np.any(np.diff(times) < 0):
        raise ValueError("timestamps must be in presentation order (non-decreasing).")
    if count == 1:
        targets = np.array([(times[0] + times[-1]) / 2.0])
    else:
        targets = np.linspace(times[0], times[-1], int(count))
    # Nearest frame to each target: compare the neighbours either side of it.
    right = np.clip(np.searchsorted(times, targets), 1, num_frames - 1)
    left = right - 1
    nearest = np.where(targets - times[left] <= times[right] - targets, left, right)
    chosen: list[int] = []
    for k, index in enumerate(nearest.tolist()):
        lowest = chosen[-1] + 1 if chosen else 0
        highest = num_frames - (int(count) - k)  # leave room for the targets still to place
        chosen.append(min(max(index, lowest), highest))
    return chosen


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` has one of the :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path: PathLike) -> bool:
    """Whether ``path`` has one of the :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


class FrameSource(Protocol):
    """Anything with an ``info`` and a ``frames(indices)`` iterator (video or images)."""

    @property
    def info(self) -> VideoInfo: ...

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[FrameTuple]: ...


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FrameSource",
    "FrameTuple",
    "PathLike",
    "VideoInfo",
    "VideoReadError",
    "checked_indices",
    "is_image_file",
    "is_video_file",
    "media_warnings",
    "missing_error",
    "sample_frame_indices",
]
