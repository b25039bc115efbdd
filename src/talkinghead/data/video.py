"""Video files as frame sources (the contract is :mod:`talkinghead.data.media_info`).

:func:`probe_video` describes a file without decoding it all; :func:`read_video_frames` decodes
one frame at a time, so a long clip never sits in memory. Opening and demuxing the container
is :mod:`talkinghead.data.video_container`.

Videos are read with PyAV. Frame counts come from demuxing packets (container metadata is
often wrong after stream-copy cuts), times come from packet timestamps (so variable frame
rate clips are handled), and the display matrix is applied so phone videos come out upright.
Timestamps that repeat (all zero, say) are replaced by ``index / nominal rate``, and an MP4
edit list built on them is ignored, so none of the frames it would hide is lost.
A file that breaks off midway yields the frames it holds and then raises
:class:`VideoReadError` with ``reason="truncated"``, so the caller can keep what was read.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np

from talkinghead.data.media_info import (
    FrameTuple,
    PathLike,
    VideoInfo,
    VideoReadError,
    checked_indices,
    missing_error,
)
from talkinghead.data.video_container import open_video, packets_until_break, retiming_rate, stream_rate

# Frames an index may list beyond the packets the demuxer returns before a warning.
_FRAME_COUNT_SLACK = 2

# Pixel formats that carry luma only (optionally with alpha).
_GRAY_PIXEL_FORMAT_PREFIXES = ("gray", "ya8", "ya16", "y8", "y400", "monob", "monow")


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
    container, stream, timing = open_video(path)
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
        for packet in packets_until_break(container, stream, breaks):
            # Discarded packets (before an edit list's start) are decoded for reference
            # but never shown, so they are not frames of the clip (unless the edit list
            # rests on broken timestamps: see open_video).
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
        rate = stream_rate(stream)
        retimed = None
        if any(time is None for time in times):
            timestamps = [index / rate for index in range(len(times))]
        else:
            timestamps = sorted(float(time) for time in times)
            repeats = len(timestamps) - len(set(timestamps))
            if repeats:
                # Presentation times are unique in a sound stream; repeated ones (all zero, say)
                # would make a rate of hundreds of frames/s. The header's rate is the better guess.
                rate = retiming_rate(stream)
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
    for packet in packets_until_break(container, stream, breaks):
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
    wanted = checked_indices(indices, path)
    if not path.exists():
        raise missing_error(path, "video file")
    return _iter_video_frames(path, wanted)


def _iter_video_frames(path: Path, wanted: list[int] | None) -> Iterator[FrameTuple]:
    if wanted is not None and not wanted:
        return
    container, stream, timing = open_video(path)
    try:
        stream.codec_context.thread_type = "AUTO"
        # Repeated timestamps are replaced by index / rate, as probe_video does.
        rate = retiming_rate(stream) if timing.repeats else stream_rate(stream)
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


__all__ = ["VideoFile", "probe_video", "read_video_frames"]
