"""Add an audio track to an encoded video without encoding the video again.

:func:`remux_with_audio` is the second, cheap pass of :class:`~talkinghead.inference.
writers.VideoWriter`: it copies the already encoded video packets and interleaves them,
by time, with the first audio track of another file (usually the driving video).

- The audio packets are copied as they are when their codec can go in the output
  container; any other codec is decoded and encoded to AAC, so the output always plays.
- The audio is cut to the video's duration (or a given ``max_duration``): an animation
  that stops early does not run on with sound over nothing.
- The audio keeps its offset relative to the source's video start, not to the file's
  start, so lips and sound stay in sync when the source's streams begin at different
  times.
- Packets are fed to the muxer in decoding-time order, which keeps its interleaving
  queue short.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Union

import av
import numpy as np

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

# Audio codecs each muxer takes as they are (and that common players read there); any
# other codec is transcoded to AAC.
_COPYABLE_AUDIO = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3"}),
    "mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be"}),
    "matroska": frozenset(
        {"aac", "mp3", "ac3", "eac3", "opus", "vorbis", "flac", "alac", "pcm_s16le"}
    ),
}

# Sample rates the AAC encoder accepts; audio at any other rate is resampled to 48 kHz.
_AAC_SAMPLE_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}
)


def _packet_time(packet: av.Packet) -> float:
    """Decoding time of ``packet`` in seconds, the order a muxer wants packets in."""
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base)


def _copied_packets(
    source: av.container.InputContainer, stream_in, stream_out, *, shift: int = 0
) -> Iterator[av.Packet]:
    """Demux ``stream_in`` and retarget its packets to ``stream_out``, moved by ``shift``."""
    for packet in source.demux(stream_in):
        if packet.pts is None and packet.dts is None:
            continue  # the demuxer's empty end-of-stream packet
        if shift:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
        packet.stream = stream_out
        yield packet


def _video_start(source: av.container.InputContainer) -> float:
    """When the source's video starts (s): its audio is kept in sync relative to it."""
    if not source.streams.video:
        return 0.0
    stream = source.streams.video[0]
    if stream.start_time is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _copied_audio(
    source: av.container.InputContainer,
    stream_in,
    stream_out,
    *,
    offset: float,
    limit: float,
) -> Iterator[av.Packet]:
    """Audio packets as they are, shifted by ``-offset`` s, within ``[0, limit)`` s.

    Of the packets that end before the video starts only the last one is kept: audio
    decoders (AAC) need one packet of history, which the output's edit list hides.
    """
    shift = round(offset / stream_in.time_base)
    before = None
    for packet in _copied_packets(source, stream_in, stream_out, shift=shift):
        stamp = packet.pts if packet.pts is not None else packet.dts
        start = stamp * packet.time_base
        if start >= limit:
            break
        if start + packet.duration * packet.time_base <= 0:
            before = packet
            continue
        if before is not None:
            yield before
            before = None
        yield packet


def _aac_stream(output: av.container.OutputContainer, stream_in):
    """Add an AAC stream to ``output`` for ``stream_in``'s audio (mono or stereo)."""
    rate = stream_in.codec_context.sample_rate
    stream = output.add_stream("aac", rate=rate if rate in _AAC_SAMPLE_RATES else 48000)
    # Mono or stereo: sources often carry an unordered layout ("2 channels") that the
    # AAC encoder refuses, and a talking head needs no surround sound.
    mono = stream_in.codec_context.layout.nb_channels == 1
    stream.layout = "mono" if mono else "stereo"
    stream.format = "fltp"  # the only sample format FFmpeg's AAC encoder takes
    return stream


def _slice_samples(frame: av.AudioFrame, start: int, stop: int) -> av.AudioFrame:
    """Samples ``[start, stop)`` of ``frame`` as a new frame of the same format."""
    if start == 0 and stop == frame.samples:
        return frame
    data = frame.to_ndarray()
    if frame.format.is_planar:  # (channels, samples)
        data = data[:, start:stop]
    else:  # (1, samples * channels), channels interleaved
        channels = frame.layout.nb_channels
        data = data[:, start * channels : stop * channels]
    sliced = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(data), format=frame.format.name, layout=frame.layout.name
    )
    sliced.sample_rate = frame.sample_rate
    return sliced


def _audio_window(
    source: av.container.InputContainer, stream_in, *, offset: float, limit: float
) -> Iterator[av.AudioFrame]:
    """Decoded audio of ``[offset, offset + limit)`` s, re-timed to start at 0."""
    next_start = 0.0
    for packet in source.demux(stream_in):
        for frame in packet.decode():
            rate = frame.sample_rate
            start = frame.time - offset if frame.time is not None else next_start
            next_start = start + frame.samples / rate
            if start >= limit:
                return
            first = max(0, round(-start * rate))
            stop = min(frame.samples, round((limit - start) * rate))
            if stop <= first:
                continue  # wholly before the video starts
            kept = _slice_samples(frame, first, stop)
            kept.pts = round(start * rate) + first
            kept.time_base = Fraction(1, rate)
            yield kept


def _transcoded_audio(
    source: av.container.InputContainer,
    stream_in,
    stream_out,
    *,
    offset: float,
    limit: float,
) -> Iterator[av.Packet]:
    """Decode ``stream_in``, keep ``[offset, offset + limit)`` s and encode it to AAC."""
    for frame in _audio_window(source, stream_in, offset=offset, limit=limit):
        yield from stream_out.encode(frame)
    yield from stream_out.encode(None)  # flush the encoder


def _open_audio_source(path: Path) -> av.container.InputContainer:
    """Open ``path`` for its audio track, turning FFmpeg's errors into an actionable one."""
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(
            f"{path}: cannot read it to copy its audio track ({error}); pass a readable "
            "video or audio file as the audio source, or none for a silent video"
        ) from error


def remux_with_audio(
    video_path: PathLike,
    output_path: PathLike,
    *,
    audio_from: PathLike | None,
    max_duration: float,
    container_format: str | None = None,
) -> bool:
    """Copy ``video_path``'s video and ``audio_from``'s first audio track to ``output_path``.

    The video packets are copied, never re-encoded. The audio is copied too when its
    codec can go in the output container, else transcoded to AAC. It is kept in sync
    with the audio source's own video start and cut at ``max_duration`` seconds.

    Returns:
        Whether an audio track was written (False for ``audio_from=None`` or a file
        without audio: the output is then the video alone).
    """
    with contextlib.ExitStack() as stack:
        source = None
        if audio_from is not None:
            source = stack.enter_context(_open_audio_source(Path(audio_from)))
            if not source.streams.audio:
                log.info("%s has no audio track; the video is silent", audio_from)
                source = None
        video = stack.enter_context(av.open(str(video_path), mode="r"))
        output = stack.enter_context(
            av.open(str(output_path), mode="w", format=container_format)
        )
        _mux_streams(video, source, output, max_duration)
    return source is not None


def _mux_streams(video, source, output, max_duration: float) -> None:
    """Interleave ``video``'s packets with ``source``'s audio (if any) into ``output``."""
    video_in = video.streams.video[0]
    video_out = output.add_stream_from_template(video_in)
    video_packets = _copied_packets(video, video_in, video_out)
    if source is None:
        for packet in video_packets:
            output.mux(packet)
        return
    audio_in = source.streams.audio[0]
    window = {"offset": _video_start(source), "limit": max_duration}
    if audio_in.codec_context.name in _COPYABLE_AUDIO.get(output.format.name, ()):
        audio_out = output.add_stream_from_template(audio_in)
        audio = _copied_audio(source, audio_in, audio_out, **window)
    else:
        audio_out = _aac_stream(output, audio_in)
        audio = _transcoded_audio(source, audio_in, audio_out, **window)
    # Feeding packets in time order keeps the muxer's interleaving queue short.
    for packet in heapq.merge(video_packets, audio, key=_packet_time):
        output.mux(packet)
