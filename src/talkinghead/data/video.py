"""Frame sources for dataset preparation: video files, image sequences and single photos.

Every source answers two questions the same way:

* ``info`` — a :class:`VideoInfo` with the upright size, frame count, frame rate and the
  presentation time of every frame, found without decoding the whole file;
* ``frames(indices)`` — an iterator of ``(index, time_s, rgb)`` tuples, where ``rgb`` is an
  upright ``(H, W, 3)`` uint8 array, decoding one frame at a time so a long clip never sits
  in memory.

Videos are read with PyAV. Frame counts come from demuxing packets (container metadata is
often wrong after stream-copy cuts), times come from packet timestamps (so variable frame
rate clips are handled), and the display matrix is applied so phone videos come out upright.
Timestamps that repeat (all zero, say) are replaced by ``index / nominal rate``, and an MP4
edit list built on them is ignored, so none of the frames it would hide is lost.
A file that breaks off midway yields the frames it holds and then raises
:class:`VideoReadError` with ``reason="truncated"``, so the caller can keep what was read.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Iterator, Literal, Protocol, Sequence, Union

import av
import numpy as np
from PIL import Image, ImageOps

from talkinghead.config.media import DEFAULT_FPS
from talkinghead.errors import TalkingHeadError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})

# A nominal rate above this is a broken header, not a camera (used when timestamps are broken too).
_PLAUSIBLE_MAX_FPS = 240.0
# Frames an index may list beyond the packets the demuxer returns before a warning.
_FRAME_COUNT_SLACK = 2
# Demuxers that apply an edit list and can be told to ignore it (FFmpeg's ``ignore_editlist``).
_EDIT_LIST_FORMATS = frozenset({"mov", "mp4"})

# Pixel formats that carry luma only (optionally with alpha).
_GRAY_PIXEL_FORMAT_PREFIXES = ("gray", "ya8", "ya16", "y8", "y400", "monob", "monow")

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


def _missing_error(path: Path, what: str) -> VideoReadError:
    return VideoReadError(path, "missing", f"{path}: {what} does not exist; check the path.")


def _normalise_rotation(degrees: float) -> int:
    """Counter-clockwise ``degrees`` snapped to the nearest quarter turn in ``[0, 360)``."""
    return int(round(degrees / 90.0)) * 90 % 360


def _is_gray_pixel_format(name: str | None) -> bool:
    return bool(name) and name.startswith(_GRAY_PIXEL_FORMAT_PREFIXES)


def _frame_rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Rotation of ``frame`` from its display matrix, else from a legacy ``rotate`` tag."""
    rotation = frame.rotation
    if rotation == 0 and "rotate" in stream.metadata:
        # Old muxers wrote a clockwise ``rotate`` tag instead of a display matrix.
        try:
            rotation = -float(stream.metadata["rotate"])
        except ValueError:
            rotation = 0
    return _normalise_rotation(rotation)


def _stream_rate(stream: av.video.stream.VideoStream) -> float:
    """Nominal frame rate of ``stream`` from its header, or :data:`DEFAULT_FPS`."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return DEFAULT_FPS


def _retiming_rate(stream: av.video.stream.VideoStream) -> float:
    """The rate that replaces broken timestamps: the header's, unless it is implausible too."""
    rate = _stream_rate(stream)
    return rate if rate <= _PLAUSIBLE_MAX_FPS else DEFAULT_FPS


def _mp4_is_cut_short(path: Path) -> bool:
    """Whether an MP4/MOV file's top-level boxes claim more bytes than the file holds.

    That is the signature of a download or copy that stopped early; when the index
    (``moov``) was written last it is lost and FFmpeg only says "invalid data".
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(8)
        if len(header) < 8 or header[4:8] != b"ftyp":
            return False
        offset = 0
        for _ in range(10_000):
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                return False
            box_size = struct.unpack(">I", header[:4])[0]
            if box_size == 1 and len(header) == 16:
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # box runs to the end of the file
                return False
            if box_size < 8:
                return False
            offset += box_size
            if offset > size:
                return True
            if offset == size:
                return False
    return False


def _open_container(path: Path, options: dict[str, str] | None = None) -> av.container.InputContainer:
    """Open ``path`` with PyAV (demuxer ``options``), turning every failure into a :class:`VideoReadError`."""
    if not path.exists():
        raise _missing_error(path, "video file")
    if path.is_dir():
        raise VideoReadError(
            path, "unreadable", f"{path}: is a folder, expected a video file; pass a file, or "
            "use ImageSequence.from_folder for a folder of frames."
        )
    try:
        return av.open(str(path), mode="r", options=options or {})
    except PermissionError as error:
        raise VideoReadError(
            path, "unreadable", f"{path}: permission denied ({error.strerror}); fix the file "
            "permissions."
        ) from error
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        if path.stat().st_size == 0:
            raise VideoReadError(
                path, "unreadable", f"{path}: file is empty (0 bytes); re-copy or re-download it."
            ) from error
        if path.suffix.lower() in {".mp4", ".mov", ".m4v"} and _mp4_is_cut_short(path):
            raise VideoReadError(
                path, "truncated", f"{path}: the file ends before its index (it was probably "
                "cut off during download or copy); re-download it."
            ) from error
        # FFmpeg's own words without its errno number and the file name again ("[Errno 1094995529] ...: 'x.mp4'")
        reason = getattr(error, "strerror", None) or str(error)
        raise VideoReadError(
            path, "unreadable", f"{path}: not a readable media file ({reason}); check that it is "
            "a video and not a partial download or a renamed file."
        ) from error


def _video_stream(container: av.container.InputContainer, path: Path):
    if not container.streams.video:
        raise VideoReadError(
            path, "no_video_stream", f"{path}: has no video stream (streams: "
            f"{[stream.type for stream in container.streams] or 'none'}); pass a video file."
        )
    return container.streams.video[0]


@dataclass(frozen=True)
class _Timing:
    """What one demuxing pass (no decoding) says about a video stream's timestamps.

    Attributes:
        repeats: shown packets whose presentation time repeats an earlier one's (0 in a
            sound stream; all-zero timestamps give one less than the shown packets).
        hidden: packets with data the demuxer marks as discarded (outside the edit list),
            as the container is read (0 once an edit list on broken times is ignored).
    """

    repeats: int
    hidden: int


def _scan_timing(container: av.container.InputContainer, stream) -> _Timing:
    """Demux ``stream`` to its end (or first break) and count repeated and hidden packets."""
    shown: set[int] = set()
    repeats = hidden = 0
    for packet in _packets_until_break(container, stream):
        if packet.size == 0:
            continue
        if packet.is_discard:
            hidden += 1
            continue
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is not None:
            repeats += pts in shown
            shown.add(pts)
    return _Timing(repeats, hidden)


def _open_video(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, _Timing]:
    """Open ``path``'s first video stream so that every frame it holds decodes.

    An MP4/MOV edit list maps frames to times through the stored sample durations; when
    those are broken (all zero, say) the demuxer marks most packets as discarded and the
    decoder drops their frames without a word (102 of 216 frames in a real case). Such a
    file is reopened with the edit list ignored: the decoder then returns every frame, in
    display order, and the times are replaced by ``index / nominal rate``.

    Returns:
        ``(container, stream, timing)``; the caller closes the container.
    """
    container = _open_container(path)
    try:
        stream = _video_stream(container, path)
        timing = _scan_timing(container, stream)
        recoverable = bool(set(container.format.name.split(",")) & _EDIT_LIST_FORMATS)
    finally:
        container.close()
    if timing.repeats and timing.hidden and recoverable:
        container = _open_container(path, {"ignore_editlist": "1"})
        timing = _Timing(timing.repeats, hidden=0)
    else:
        container = _open_container(path)
    try:
        return container, _video_stream(container, path), timing
    except VideoReadError:
        container.close()
        raise


def _packets_until_break(
    container: av.container.InputContainer, stream, breaks: list[str] | None = None
) -> Iterator[av.Packet]:
    """Demux ``stream``, stopping quietly at a demuxer error or a corrupt packet.

    The reason of a break is appended to ``breaks`` when given.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as error:
            if breaks is not None:
                breaks.append(f"demuxing failed: {error}")
            return
        if packet.is_corrupt:
            if breaks is not None:
                breaks.append(f"packet at {_packet_time(packet, stream):.3f}s is cut short or corrupt")
            return
        yield packet


def _first_decoded(stream, packet: av.Packet | None, path: Path) -> av.VideoFrame | None:
    """Feed ``packet`` (``None`` drains) to the decoder; its first frame out, if any."""
    try:
        frames = stream.decode(packet)
    except av.error.FFmpegError as error:
        raise VideoReadError(
            path, "undecodable", f"{path}: the first video frame cannot be decoded ({error}); "
            "the file is corrupt or uses an unsupported codec."
        ) from error
    return frames[0] if frames else None


def probe_video(path: PathLike) -> VideoInfo:
    """Describe a video file by demuxing its packets and decoding only its first frame.

    Args:
        path: a video file.

    Returns:
        The :class:`VideoInfo` of the first video stream.

    Raises:
        VideoReadError: the file is missing (``"missing"``), not a media file
            (``"unreadable"``), cut off before its index (``"truncated"``), has no video
            stream (``"no_video_stream"``), holds no frames (``"empty"``) or its first
            frame cannot be decoded (``"undecodable"``). A file cut off after its index
            is described up to the break (no error here; the reader reports it).
    """
    path = Path(path)
    container, stream, timing = _open_video(path)
    try:
        time_base = stream.time_base
        has_audio = bool(container.streams.audio)
        times: list[Fraction | None] = []
        first_frame = None
        # A container that breaks off (demuxer error, or a packet cut short by the end of
        # a truncated file) is described up to the break: read_video_frames stops there too
        # and raises ``"truncated"`` after yielding those frames.
        breaks: list[str] = []
        demuxed = 0  # packets with data, the discarded ones included (the index counts them)
        for packet in _packets_until_break(container, stream, breaks):
            # Discarded packets (before an edit list's start) are decoded for reference
            # but never shown, so they are not frames of the clip (unless the edit list
            # rests on broken timestamps: see _open_video).
            demuxed += packet.size > 0
            if packet.size > 0 and not packet.is_discard:
                pts = packet.pts if packet.pts is not None else packet.dts
                times.append(None if pts is None or time_base is None else pts * time_base)
            if first_frame is None:
                first_frame = _first_decoded(stream, packet, path)
        if first_frame is None and times:
            first_frame = _first_decoded(stream, None, path)
        if not times:
            raise VideoReadError(
                path, "empty", f"{path}: the video stream holds no frames; the file is empty."
            )
        if first_frame is None:
            raise VideoReadError(
                path, "undecodable", f"{path}: none of its {len(times)} video packets decoded "
                "to a frame; the file is corrupt or uses an unsupported codec."
            )
        rate = _stream_rate(stream)
        retimed = None
        if any(time is None for time in times):
            timestamps = [index / rate for index in range(len(times))]
        else:
            timestamps = sorted(float(time) for time in times)
            repeats = len(timestamps) - len(set(timestamps))
            if repeats:
                # Presentation times are unique in a sound stream; repeated ones (all zero, say)
                # would make a rate of hundreds of frames/s. The header's rate is the better guess.
                rate = _retiming_rate(stream)
                retimed = f"{repeats} of {len(timestamps)} frames repeat an earlier frame's time"
                timestamps = [index / rate for index in range(len(times))]
        span = timestamps[-1] - timestamps[0]
        fps = (len(timestamps) - 1) / span if len(timestamps) > 1 and span > 0 else rate
        stated = float(container.duration) / 1e6 if container.duration else None
        if not breaks and not retimed and stated is not None and stated > timestamps[-1] + 2.0 / fps + 0.5:
            breaks.append(f"the container states {stated:.2f}s but frames end at {timestamps[-1]:.2f}s")
        stated_frames = stream.frames if stream.frames and stream.frames > 0 else None
        if not breaks and stated_frames is not None and demuxed < stated_frames - _FRAME_COUNT_SLACK:
            breaks.append(f"its index lists {stated_frames} frames but the stream holds {demuxed}")
        if stated_frames is None and stated is not None:
            stated_frames = round(stated * rate)
        rotation = _frame_rotation(first_frame, stream)
        width, height = first_frame.width, first_frame.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=fps,
            num_frames=len(timestamps),
            duration=len(timestamps) / fps,
            rotation=rotation,
            timestamps=timestamps,
            has_audio=has_audio,
            is_grayscale=_is_gray_pixel_format(stream.codec_context.pix_fmt)
            or _is_gray_pixel_format(first_frame.format.name),
            truncated=breaks[0] if breaks else None,
            stated_frames=stated_frames,
            retimed=retimed,
            lost_frames=timing.hidden if retimed else 0,
        )
    finally:
        container.close()


def _checked_indices(indices: Sequence[int] | None, source: Path) -> list[int] | None:
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


class _DecodeFailure(Exception):
    """Internal: the demuxer or decoder failed after the frames already yielded."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def _decode_frames(container: av.container.InputContainer, stream) -> Iterator[av.VideoFrame]:
    """Decode ``stream`` packet by packet.

    On a demuxer or decoder error, or at the first packet the demuxer flags as corrupt
    (a packet cut short by the end of a truncated file), stop reading, drain the frames
    the decoder already holds, then raise :class:`_DecodeFailure`. Stopping at the flag
    matters: with frame threading FFmpeg drops the broken packet without an error.
    """
    breaks: list[str] = []
    for packet in _packets_until_break(container, stream, breaks):
        try:
            frames = stream.decode(packet)
        except av.error.FFmpegError as error:
            breaks.append(f"decoding failed: {error}")
            break
        yield from frames
    if not breaks:
        return
    failure = breaks[0]
    # Frames the decoder completed before the failure are still good: drain them.
    try:
        remaining = stream.decode(None)
    except av.error.FFmpegError:
        remaining = []  # the decoder cannot drain after this failure; report the original one
    yield from remaining
    raise _DecodeFailure(failure)


def _packet_time(packet: av.Packet, stream) -> float:
    pts = packet.pts if packet.pts is not None else packet.dts
    if pts is None or stream.time_base is None:
        return float("nan")
    return float(pts * stream.time_base)


def _to_upright_rgb(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of ``frame`` turned ``rotation`` degrees counter-clockwise."""
    rgb = frame.to_ndarray(format="rgb24")
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb


def read_video_frames(
    path: PathLike, indices: Sequence[int] | None = None
) -> Iterator[FrameTuple]:
    """Decode a video and yield the requested frames one at a time.

    Args:
        path: a video file.
        indices: frame indices to yield (sorted and de-duplicated; indices match
            :attr:`VideoInfo.timestamps`), or ``None`` for every frame.

    Yields:
        ``(index, time_s, rgb)`` with ``rgb`` an upright ``(H, W, 3)`` uint8 RGB array
        (grayscale sources are expanded to three channels).

    Raises:
        VideoReadError: as :func:`probe_video` for files that cannot be opened, with
            ``reason="truncated"`` when decoding fails midway (raised after yielding the
            frames decoded before the failure; ``frames_read`` says how many), or
            ``reason="too_few_frames"`` when the video ends before a requested index.
    """
    path = Path(path)
    wanted = _checked_indices(indices, path)
    if not path.exists():
        raise _missing_error(path, "video file")
    return _iter_video_frames(path, wanted)


def _iter_video_frames(path: Path, wanted: list[int] | None) -> Iterator[FrameTuple]:
    if wanted is not None and not wanted:
        return
    container, stream, timing = _open_video(path)
    try:
        stream.codec_context.thread_type = "AUTO"
        # Repeated timestamps are replaced by index / rate, as probe_video does.
        rate = _retiming_rate(stream) if timing.repeats else _stream_rate(stream)
        position = 0  # next entry of ``wanted`` to yield
        decoded = 0
        try:
            for frame in _decode_frames(container, stream):
                index = decoded
                decoded += 1
                if wanted is not None and index != wanted[position]:
                    continue
                # Not ``frame.time``: frames drained at the end carry no time base in PyAV.
                if frame.pts is not None and stream.time_base is not None and not timing.repeats:
                    time = float(frame.pts * stream.time_base)
                else:
                    time = index / rate
                yield index, time, _to_upright_rgb(frame, _frame_rotation(frame, stream))
                if wanted is not None:
                    position += 1
                    if position == len(wanted):
                        return
        except _DecodeFailure as failure:
            raise VideoReadError(
                path, "truncated", f"{path}: reading stopped after {decoded} frames "
                f"({failure.description}); the file is truncated or corrupt. The frames before "
                "the failure were returned; re-download or re-encode the file to get the rest.",
                frames_read=decoded,
            ) from failure
        if decoded == 0:
            raise VideoReadError(
                path, "empty", f"{path}: the video stream holds no frames; the file is empty."
            )
        if wanted is not None:
            raise VideoReadError(
                path, "too_few_frames", f"{path}: frame {wanted[position]} was requested but the "
                f"video decodes to only {decoded} frames; take indices from probe_video().",
                frames_read=decoded,
            )
    finally:
        container.close()


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


def _natural_key(path: Path) -> tuple:
    """Sort key that puts ``frame2`` before ``frame10``."""
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple(int(part) if part.isdigit() else part for part in parts), path.name


def natural_sorted(paths: Sequence[PathLike]) -> list[Path]:
    """``paths`` ordered by file name with digit runs compared as numbers."""
    return sorted((Path(path) for path in paths), key=_natural_key)


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` has one of the :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path: PathLike) -> bool:
    """Whether ``path`` has one of the :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from any PIL mode; 16-bit and float images are rescaled."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    # ``convert("RGB")`` expands L/LA/P/CMYK/YCbCr and drops alpha.
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _unreadable_image(path: Path, error: Exception, frames_read: int = 0) -> VideoReadError:
    return VideoReadError(
        path, "unreadable", f"{path}: not a readable image ({error}); replace or remove the file.",
        frames_read=frames_read,
    )


def read_image(path: PathLike) -> np.ndarray:
    """Load a photo as an upright ``(H, W, 3)`` uint8 RGB array.

    EXIF orientation is applied, grayscale becomes three equal channels and alpha is
    dropped.

    Raises:
        VideoReadError: the file is missing (``"missing"``) or cannot be decoded
            (``"unreadable"``).
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise VideoReadError(
                path, "unreadable", f"{path}: is a folder, expected an image file."
            )
        raise _missing_error(path, "image file")
    try:
        with Image.open(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _pil_to_rgb(upright)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        # UnidentifiedImageError and "image file is truncated" are both OSErrors.
        raise _unreadable_image(path, error) from error


def _image_size(path: Path) -> tuple[int, int, str]:
    """Upright ``(width, height, mode)`` from the image header, without decoding pixels."""
    if not path.is_file():
        raise _missing_error(path, "image file")
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation tag
            if orientation in (5, 6, 7, 8):  # the transposing orientations swap the sides
                width, height = height, width
            return width, height, image.mode
    except (OSError, ValueError, SyntaxError) as error:
        raise _unreadable_image(path, error) from error


def probe_images(paths: Sequence[PathLike], fps: float = DEFAULT_FPS) -> VideoInfo:
    """Describe an ordered list of image files as if they were frames of a video.

    Frame ``i`` is shown at ``i / fps`` seconds. ``width``/``height``/``is_grayscale`` are
    those of the first image (later images may differ in size; frames keep their own).

    Raises:
        VideoReadError: no paths (``"empty"``), a missing file (``"missing"``) or an
            unreadable first image (``"unreadable"``).
        ValueError: ``fps`` is not positive.
    """
    paths = [Path(path) for path in paths]
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    if not paths:
        raise VideoReadError(Path("."), "empty", "no image files given; pass at least one image.")
    for path in paths:
        if not path.is_file():
            raise _missing_error(path, "image file")
    width, height, mode = _image_size(paths[0])
    parents = {path.parent for path in paths}
    return VideoInfo(
        path=paths[0].parent if len(parents) == 1 and len(paths) > 1 else paths[0],
        width=width,
        height=height,
        fps=float(fps),
        num_frames=len(paths),
        duration=len(paths) / fps,
        rotation=0,
        timestamps=[index / fps for index in range(len(paths))],
        has_audio=False,
        is_grayscale=mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"),
    )


def read_image_frames(
    paths: Sequence[PathLike], indices: Sequence[int] | None = None, fps: float = DEFAULT_FPS
) -> Iterator[FrameTuple]:
    """Yield ``(index, index / fps, rgb)`` for the requested images of an ordered list.

    Args:
        paths: image files in frame order.
        indices: positions in ``paths`` to read (sorted and de-duplicated), or ``None``.
        fps: frame rate used for the times.

    Raises:
        IndexError: an index is past the end of ``paths``.
        VideoReadError: an image is missing or unreadable (raised when reached, after the
            earlier frames were yielded; ``path`` names that image).
    """
    paths = [Path(path) for path in paths]
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    source = paths[0].parent if paths else Path(".")
    wanted = _checked_indices(indices, source)
    if wanted is None:
        wanted = list(range(len(paths)))
    if wanted and wanted[-1] >= len(paths):
        raise IndexError(
            f"{source}: frame {wanted[-1]} was requested but the sequence has {len(paths)} images."
        )
    return _iter_image_frames(paths, wanted, fps)


def _iter_image_frames(paths: list[Path], wanted: list[int], fps: float) -> Iterator[FrameTuple]:
    for count, index in enumerate(wanted):
        try:
            rgb = read_image(paths[index])
        except VideoReadError as error:
            error.frames_read = count
            raise
        yield index, index / fps, rgb


class FrameSource(Protocol):
    """Anything with an ``info`` and a ``frames(indices)`` iterator (video or images)."""

    @property
    def info(self) -> VideoInfo: ...

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[FrameTuple]: ...


class VideoFile:
    """A video file as a :class:`FrameSource`; ``info`` is probed once, on first use."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)

    @cached_property
    def info(self) -> VideoInfo:
        """The :func:`probe_video` result for this file."""
        return probe_video(self.path)

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[FrameTuple]:
        """See :func:`read_video_frames`."""
        return read_video_frames(self.path, indices)

    def __repr__(self) -> str:
        return f"VideoFile({str(self.path)!r})"


class ImageSequence:
    """Ordered image files read as the frames of a clip at ``fps`` frames per second."""

    def __init__(self, paths: Sequence[PathLike], fps: float = DEFAULT_FPS) -> None:
        self.paths = [Path(path) for path in paths]
        self.fps = float(fps)

    @classmethod
    def from_folder(cls, folder: PathLike, fps: float = DEFAULT_FPS) -> "ImageSequence":
        """All images directly inside ``folder`` (hidden files skipped), sorted naturally.

        Raises:
            VideoReadError: the folder is missing (``"missing"``) or holds no image with
                one of :data:`IMAGE_EXTENSIONS` (``"empty"``).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise _missing_error(folder, "image folder")
        images = [
            path for path in folder.iterdir()
            if path.is_file() and is_image_file(path) and not path.name.startswith(".")
        ]
        if not images:
            raise VideoReadError(
                folder, "empty", f"{folder}: holds no images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}); point at a folder of frames."
            )
        return cls(natural_sorted(images), fps)

    @cached_property
    def info(self) -> VideoInfo:
        """The :func:`probe_images` result for these files."""
        return probe_images(self.paths, self.fps)

    def frames(self, indices: Sequence[int] | None = None) -> Iterator[FrameTuple]:
        """See :func:`read_image_frames`."""
        return read_image_frames(self.paths, indices, self.fps)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        first = str(self.paths[0]) if self.paths else ""
        return f"ImageSequence({len(self.paths)} images from {first!r}, fps={self.fps})"


def open_frame_source(
    path_or_paths: PathLike | Sequence[PathLike], fps: float = DEFAULT_FPS
) -> FrameSource:
    """A :class:`FrameSource` for a video file, a single image, a folder of frames or an
    ordered list of image paths (``fps`` sets the times of image frames).

    Raises:
        VideoReadError: the path is missing, or a list names a file that is not an image.
    """
    if isinstance(path_or_paths, (str, os.PathLike)):
        path = Path(path_or_paths)
        if path.is_dir():
            return ImageSequence.from_folder(path, fps)
        if not path.exists():
            raise _missing_error(path, "input")
        if is_image_file(path):
            return ImageSequence([path], fps)
        return VideoFile(path)
    paths = [Path(path) for path in path_or_paths]
    for path in paths:
        if not is_image_file(path):
            raise VideoReadError(
                path, "unreadable", f"{path}: a list of frames must hold images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}); pass a video file on its own."
            )
    return ImageSequence(paths, fps)


__all__ = [
    "DEFAULT_FPS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FrameSource",
    "ImageSequence",
    "VideoFile",
    "VideoInfo",
    "VideoReadError",
    "is_image_file",
    "is_video_file",
    "natural_sorted",
    "open_frame_source",
    "probe_images",
    "probe_video",
    "read_image",
    "read_image_frames",
    "read_video_frames",
    "sample_frame_indices",
]
