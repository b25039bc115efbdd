"""Opening a video file's container with PyAV: every failure one :class:`VideoReadError`.

Below :mod:`talkinghead.data.video`, which decodes frames: here the container is opened (a
missing, empty, renamed or cut-off file is named for what it is), the first video stream is
found, packets are demuxed up to the first break (a demuxer error, or a packet cut short by
the end of a truncated file), and the stream's timestamps are scanned once before decoding.
An MP4/MOV edit list built on broken timestamps (all zero, say) would hide most frames from
the decoder without a word; :func:`open_video` reopens such a file with the edit list ignored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av

from talkinghead.config.media import DEFAULT_FPS
from talkinghead.data.media_info import VideoReadError, missing_error

# A nominal rate above this is a broken header, not a camera (used when timestamps are broken too).
_PLAUSIBLE_MAX_FPS = 240.0
# Demuxers that apply an edit list and can be told to ignore it (FFmpeg's ``ignore_editlist``).
_EDIT_LIST_FORMATS = frozenset({"mov", "mp4"})


def stream_rate(stream: av.video.stream.VideoStream) -> float:
    """Nominal frame rate of ``stream`` from its header, or :data:`DEFAULT_FPS`."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return DEFAULT_FPS


def retiming_rate(stream: av.video.stream.VideoStream) -> float:
    """The rate that replaces broken timestamps: the header's, unless it is implausible too."""
    rate = stream_rate(stream)
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
        raise missing_error(path, "video file")
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
    for packet in packets_until_break(container, stream):
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


def open_video(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, _Timing]:
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


def packets_until_break(
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


def _packet_time(packet: av.Packet, stream) -> float:
    pts = packet.pts if packet.pts is not None else packet.dts
    if pts is None or stream.time_base is None:
        return float("nan")
    return float(pts * stream.time_base)


__all__ = ["open_video", "packets_until_break", "retiming_rate", "stream_rate"]
