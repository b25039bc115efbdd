"""Frame writers for the animation command: an H.264 video file or a folder of PNGs.

Frames arrive one at a time as ``(H, W, 3)`` uint8 RGB arrays and are written as they
come, so a long animation never sits in memory. Both writers build their output under a
hidden temporary name beside the target and move it into place only when it is complete:
a crash, an exception or :meth:`FrameWriter.abort` never leaves a half-written file under
the final name, and an existing output is only replaced (with ``overwrite``) by a
finished one.

A video keeps the driving video's frame rate and, when asked, its audio track. The audio
is added in a second, cheap pass that copies the already encoded video packets and
interleaves them with the audio packets by time; the video is never encoded twice
(see :mod:`talkinghead.inference.audio_mux`).
"""

from __future__ import annotations

import errno
import logging
import math
import numbers
import os
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Protocol, Union, runtime_checkable

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from PIL import Image

from talkinghead import errors
from talkinghead.inference.audio_mux import remux_with_audio
from talkinghead.inference.stale_temporaries import remove_stale_temporaries
from talkinghead.utils.atomic import atomic_directory, fsync_directory
from talkinghead.errors import InputNotFoundError, InvalidInputError

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

# Output suffix -> FFmpeg muxer name.
VIDEO_SUFFIXES = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}

# H.264 level 5.1's largest frame (36864 macroblocks of 16 x 16 pixels, e.g. 4096 x 2304): most
# players and hardware decoders refuse bigger frames, so bigger ones are scaled down to fit.
MAX_VIDEO_PIXELS = 36864 * 16 * 16

# Muxer of the first, encoding pass. Matroska stores no decoding timestamps, so a
# stream copy out of it would lose them: .mkv outputs are encoded to MP4, then remuxed.
_ENCODE_FORMAT = {"mp4": "mp4", "mov": "mov", "matroska": "mp4"}

# What os.link raises where the file system cannot make hard links.
_NO_HARD_LINK_ERRNOS = (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EXDEV)

# The largest denominator of the stored frame rate: 1001 keeps NTSC rates such as
# 30000/1001 exact, so the timestamps frame_index / fps do not drift.
_MAX_RATE_DENOMINATOR = 1001


class OutputExistsError(errors.OutputExistsError):
    """The output path is taken and the writer was not allowed to replace it."""

    def __init__(self, path: PathLike) -> None:
        super().__init__(
            f"{path}: already exists; pass --overwrite to replace it, or choose another "
            "output path"
        )
        self.path = Path(path)


@runtime_checkable
class FrameWriter(Protocol):
    """Where the animation's frames go, one ``(H, W, 3)`` uint8 RGB array at a time.

    Attributes:
        path: the final output (a file or a folder); nothing appears there before
            :meth:`close` succeeds.
        frames_written: how many frames :meth:`write` has taken so far.
    """

    path: Path
    frames_written: int

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame."""

    def close(self) -> Path:
        """Finish the output, move it into place and return its final path."""

    def abort(self) -> None:
        """Remove every temporary; a pre-existing output is left untouched."""

    def __enter__(self) -> FrameWriter:
        """Return the writer itself."""

    def __exit__(self, exc_type, exc, tb) -> None:
        """Close on success, abort when the block raised."""


class _WriterBase:
    """State handling shared by the writers: open -> closed, or open -> aborted."""

    path: Path
    frames_written: int
    _state: str

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> Path:  # pragma: no cover - overridden
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(
                f"{self.path}: this writer is already {self._state}; open a new writer "
                "to write again"
            )

    def _refuse_empty(self) -> None:
        """Abort and raise when :meth:`close` is called before any frame came."""
        if self.frames_written == 0:
            self.abort()
            raise InvalidInputError(
                f"{self.path}: no frames were written, so nothing was saved; check that "
                "the driving video yields frames"
            )


def _as_rgb_frame(frame: np.ndarray, path: Path) -> np.ndarray:
    """``frame`` as a C-contiguous ``(H, W, 3)`` uint8 array, or a ValueError."""
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InvalidInputError(
            f"{path}: frames must be (H, W, 3) uint8 RGB arrays, got shape "
            f"{array.shape} and dtype {array.dtype}; convert float images in [0, 1] "
            "with (x * 255).round().clip(0, 255).astype(np.uint8)"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidInputError(f"{path}: got an empty frame of shape {array.shape}")
    return np.ascontiguousarray(array)


def _check_size(
    array: np.ndarray, size: tuple[int, int], index: int, path: Path
) -> None:
    """Raise when frame ``index`` is not ``size`` (height, width) like the first one."""
    if array.shape[:2] != size:
        raise InvalidInputError(
            f"{path}: frame {index} is {array.shape[1]}x{array.shape[0]} (WxH) but the "
            f"first frame was {size[1]}x{size[0]}; every frame must have the same size"
        )


def fit_video_size(height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` scaled down, aspect kept, to at most :data:`MAX_VIDEO_PIXELS` pixels."""
    if height * width <= MAX_VIDEO_PIXELS:
        return height, width
    scale = math.sqrt(MAX_VIDEO_PIXELS / (height * width))
    return max(2, int(height * scale) // 2 * 2), max(2, int(width * scale) // 2 * 2)


def _pad_to_even(array: np.ndarray) -> np.ndarray:
    """Repeat the last row/column once where the size is odd (4:2:0 needs even sizes)."""
    pad_h, pad_w = array.shape[0] % 2, array.shape[1] % 2
    if not (pad_h or pad_w):
        return array
    return np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _frame_rate(fps: float) -> Fraction:
    """``fps`` as a fraction with a small denominator (29.97 -> 2997/100)."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real):
        raise InvalidInputError(f"fps must be a number, got {fps!r}")
    rate = (
        Fraction(fps).limit_denominator(_MAX_RATE_DENOMINATOR)
        if math.isfinite(fps)
        else 0
    )
    if rate <= 0:
        raise InvalidInputError(
            f"fps must be a positive, finite frame rate, got {fps!r}; pass the driving "
            "video's frame rate (probe_video(path).fps)"
        )
    return rate


class UnsupportedOutputError(errors.InvalidInputError):
    """An output path whose suffix no writer supports."""


def _unsupported_suffix(path: Path, option: str = "") -> UnsupportedOutputError:
    named = f"{option} {path}" if option else str(path)
    return UnsupportedOutputError(
        f"{named}: cannot write a video with suffix {path.suffix!r}; the supported suffixes are "
        f"{', '.join(VIDEO_SUFFIXES)}, or give a folder path (no suffix) to save PNG frames"
    )


def check_output_path(path: PathLike, option: str = "--output") -> None:
    """Fail before any work when :func:`open_writer` could not write ``path``.

    Raises:
        UnsupportedOutputError: a suffix that is neither a video container's nor a folder's.
        errors.InvalidInputError: a video path that is an existing folder.
    """
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if path.is_dir():
            raise errors.InvalidInputError(
                f"{option} {path}: is an existing folder, not a video file; choose a file path, or a path "
                "without suffix for PNG frames"
            )
        return
    if not (path.is_dir() or not path.suffix):
        raise _unsupported_suffix(path, option)


def _container_format(path: Path) -> str:
    """The FFmpeg muxer for ``path``'s suffix, or a ValueError listing what works."""
    try:
        return VIDEO_SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise _unsupported_suffix(path) from None


def _fsync_file(path: Path) -> None:
    """Flush ``path``'s data to disk, so the rename that follows publishes a whole file."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` onto ``path`` in one step and make the rename durable.

    Without ``overwrite`` the move is a hard link, which fails instead of replacing a
    file that appeared at ``path`` while we were writing.
    """
    if overwrite:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise OutputExistsError(path) from None
        except OSError as error:
            # File systems without hard links (FAT, some FUSE mounts): check, then rename.
            if error.errno not in _NO_HARD_LINK_ERRNOS:
                raise
            if path.exists():
                raise OutputExistsError(path) from None
            os.replace(tmp, path)
        else:
            tmp.unlink()
    fsync_directory(path.parent)


class VideoWriter(_WriterBase):
    """Encode frames to an H.264 (yuv420p) video, optionally with another file's audio.

    Args:
        path: the output video (``.mp4``, ``.mov`` or ``.mkv``); a missing parent
            folder is created.
        fps: frames per second, usually the driving video's (29.97 is kept as
            2997/100, 30000/1001 stays exact).
        audio_from: a file whose first audio track is muxed in at :meth:`close`
            (cut to the video's length); None, or a file without audio, gives a
            silent video.
        overwrite: replace an existing ``path`` (only once the new video is complete).
        crf: x264 constant rate factor, 0 (lossless) to 51; 18 is visually lossless.
        max_duration: cut the audio at this many seconds instead of the video's length.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: unsupported suffix, a non-positive ``fps``, ``crf`` or
            ``max_duration`` out of range.
    """

    def __init__(
        self,
        path: PathLike,
        fps: float,
        *,
        audio_from: PathLike | None = None,
        overwrite: bool = False,
        crf: int = 18,
        max_duration: float | None = None,
    ) -> None:
        self.path = Path(path)
        self._format = _container_format(self.path)
        self.rate = _frame_rate(fps)
        self._check_options(crf, max_duration, audio_from)
        if self.path.is_dir():
            raise IsADirectoryError(
                f"{self.path}: is a folder; give a video file path, or a path without "
                "suffix to save PNG frames"
            )
        if self.path.exists() and not overwrite:
            raise OutputExistsError(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)
        self.audio_from = None if audio_from is None else Path(audio_from)
        self.overwrite, self.crf, self.max_duration = overwrite, crf, max_duration
        self.frames_written = 0
        self._state = "open"
        self._size: tuple[int, int] | None = None  # (height, width) of the first frame
        self._encode_size: tuple[int, int] | None = None  # (height, width) encoded (fit_video_size)
        self._container = None
        self._stream = None
        self._token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._encode_format = _ENCODE_FORMAT[self._format]
        self._encoded = self._temp_path(f".{self._encode_format}")
        self._muxed = self._temp_path(f".mux{self.path.suffix}")

    def _check_options(self, crf: int, max_duration: float | None, audio_from) -> None:
        if not 0 <= crf <= 51:
            raise InvalidInputError(f"{self.path}: crf must be in [0, 51] (x264), got {crf}")
        if max_duration is not None and not max_duration > 0:
            raise InvalidInputError(
                f"{self.path}: max_duration must be > 0 s, got {max_duration}"
            )
        if audio_from is not None and not Path(audio_from).is_file():
            raise InputNotFoundError(
                f"{audio_from}: audio source does not exist; check the path, or pass no "
                "audio source for a silent video"
            )

    def _temp_path(self, suffix: str) -> Path:
        """A hidden file beside the output, e.g. ``.out.mp4.tmp-PID-XXXXXX.mp4``."""
        return self.path.parent / f".{self.path.name}.tmp-{self._token}{suffix}"

    def write(self, frame: np.ndarray) -> None:
        """Encode one ``(H, W, 3)`` uint8 RGB frame; the first frame fixes the size.

        A frame of the wrong type or size raises ValueError and leaves the writer open;
        an encoder failure aborts the writer and re-raises.
        """
        self._check_open()
        rgb = _as_rgb_frame(frame, self.path)
        if self._size is not None:
            _check_size(rgb, self._size, self.frames_written, self.path)
        try:
            if self._container is None:
                self._open(rgb.shape[:2])
            if self._encode_size != self._size:
                height, width = self._encode_size
                rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))
            self._encode(_pad_to_even(rgb))
        except BaseException:
            self.abort()
            raise
        self.frames_written += 1

    def _open(self, size: tuple[int, int]) -> None:
        """Start the encoder for frames of ``size`` (height, width), padded to even.

        Frames larger than :data:`MAX_VIDEO_PIXELS` are encoded scaled down to fit.
        """
        self._size = size
        self._encode_size = fit_video_size(*size)
        if self._encode_size != size:
            log.warning("%s: frames of %dx%d are more than most players decode; writing them at %dx%d",
                        self.path, size[1], size[0], self._encode_size[1], self._encode_size[0])
            size = self._encode_size
        self._container = av.open(
            str(self._encoded), mode="w", format=self._encode_format
        )
        stream = self._container.add_stream(
            "libx264", rate=self.rate, options={"crf": str(self.crf)}
        )
        stream.height, stream.width = size[0] + size[0] % 2, size[1] + size[1] % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.rate
        # Tag the colours we convert with, so players do not guess BT.601 vs BT.709.
        stream.codec_context.colorspace = Colorspace.ITU709
        stream.codec_context.color_range = ColorRange.MPEG
        stream.codec_context.color_primaries = ColorPrimaries.BT709
        stream.codec_context.color_trc = ColorTrc.BT709
        self._stream = stream

    def _encode(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p",
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
        )
        frame.pts = self.frames_written  # time = frame_index / fps, exactly
        frame.time_base = 1 / self.rate
        self._container.mux(self._stream.encode(frame))

    def close(self) -> Path:
        """Flush the encoder, add the audio, move the video onto ``path``; return it.

        Raises:
            ValueError: no frame was written (nothing is saved).
            OutputExistsError: ``path`` appeared while writing and ``overwrite`` is False.
        """
        if self._state == "closed":
            return self.path
        self._check_open()
        self._refuse_empty()
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            finished = self._remux()
            _fsync_file(finished)
            _publish(finished, self.path, self.overwrite)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        self._remove_temporaries()
        return self.path

    def _remux(self) -> Path:
        """Add the audio (and change container) in a second pass; the finished file."""
        if self.audio_from is None and self._encode_format == self._format:
            return self._encoded
        video_length = self.frames_written / self.rate
        limit = self.max_duration if self.max_duration is not None else video_length
        remux_with_audio(
            self._encoded,
            self._muxed,
            audio_from=self.audio_from,
            max_duration=float(limit),
            container_format=self._format,
        )
        return self._muxed

    def abort(self) -> None:
        """Stop writing and remove the temporary files; ``path`` is left as it was."""
        if self._state != "open":
            return
        self._state = "aborted"
        if self._container is not None:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError) as error:
                # The partial file is deleted next anyway; the error that made us abort
                # is the one worth raising, not this one.
                log.debug(
                    "%s: closing the partial video failed: %s", self._encoded, error
                )
        self._remove_temporaries()

    def _remove_temporaries(self) -> None:
        for tmp in (self._encoded, self._muxed):
            try:
                tmp.unlink(missing_ok=True)
            except OSError as error:
                # Never hide the error that made us clean up (a full or read-only disk).
                log.warning("could not remove the temporary %s (%s); delete it by hand", tmp, error)


class _Aborted(Exception):
    """Thrown into :func:`atomic_directory` to make it discard its temporary folder."""


class PNGSequenceWriter(_WriterBase):
    """Save frames as ``00000.png``, ``00001.png``, ... in a folder that appears whole.

    The frames go to a hidden temporary folder beside ``folder``, renamed into place on
    :meth:`close` (see :func:`talkinghead.utils.atomic.atomic_directory`).

    The folder carries a marker file naming ``command`` and its frames; ``overwrite``
    replaces only a folder whose marker says ``command`` wrote everything in it.

    Args:
        folder: the output folder; an existing empty folder is fine.
        overwrite: replace an existing non-empty folder, once the new one is complete.
        command: the command writing the frames, recorded in the marker file.

    Raises:
        OutputExistsError: ``folder`` is a non-empty folder and ``overwrite`` is False.
        FileExistsError: ``folder`` is a file.
        OutputPathError: ``overwrite`` of a folder holding files ``command`` did not write.
    """

    def __init__(self, folder: PathLike, *, overwrite: bool = False, command: str = "animate") -> None:
        self.path = Path(folder)
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise OutputExistsError(self.path)
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        remove_stale_temporaries(self.path)
        self._directory = atomic_directory(
            self.path, overwrite=overwrite, command=command, token=f"{os.getpid()}-{secrets.token_hex(3)}"
        )
        self._tmp = self._directory.__enter__()
        self._state = "open"

    def write(self, frame: np.ndarray) -> None:
        """Save one ``(H, W, 3)`` uint8 RGB frame as the next numbered PNG."""
        self._check_open()
        rgb = _as_rgb_frame(frame, self.path)
        if self._size is None:
            self._size = rgb.shape[:2]
        _check_size(rgb, self._size, self.frames_written, self.path)
        target = self._tmp / f"{self.frames_written:05d}.png"
        try:
            with open(target, "wb") as handle:
                Image.fromarray(rgb).save(handle, format="PNG")
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            self.abort()
            raise
        self.frames_written += 1

    def close(self) -> Path:
        """Move the finished folder onto ``path`` and return it.

        Raises:
            ValueError: no frame was written (nothing is saved).
            FileExistsError: ``path`` was filled by someone else while writing.
        """
        if self._state == "closed":
            return self.path
        self._check_open()
        self._refuse_empty()
        # Whatever happens next the temporary folder is gone: the rename succeeds, or
        # atomic_directory removes it while raising.
        self._state = "aborted"
        self._directory.__exit__(None, None, None)
        self._state = "closed"
        return self.path

    def abort(self) -> None:
        """Remove the temporary folder; an existing ``path`` is left as it was."""
        if self._state != "open":
            return
        self._state = "aborted"
        # Leaving the context with an exception takes atomic_directory's failure path,
        # which deletes the temporary folder and never touches ``path``.
        self._directory.__exit__(_Aborted, _Aborted(), None)


def open_writer(
    path: PathLike,
    fps: float,
    *,
    audio_from: PathLike | None = None,
    overwrite: bool = False,
    max_duration: float | None = None,
    command: str = "animate",
) -> FrameWriter:
    """The writer for ``path``: a video for a video suffix, PNG frames for a folder.

    Args:
        path: ``.mp4``/``.mov``/``.mkv`` for a video; a path without suffix, or an
            existing folder, for numbered PNG frames.
        fps: frame rate of the video (unused for PNG frames).
        audio_from: file whose audio track goes into the video (unused for PNG frames).
        overwrite: replace an existing output once the new one is complete.
        max_duration: cut the audio at this many seconds (video only).
        command: the command writing PNG frames, recorded in the folder's marker file.

    Raises:
        UnsupportedOutputError: ``path`` has a suffix that is neither a video container
            nor a folder's (a ValueError; :func:`check_output_path` finds it up front).
    """
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoWriter(
            path,
            fps,
            audio_from=audio_from,
            overwrite=overwrite,
            max_duration=max_duration,
        )
    if path.is_dir() or not path.suffix:
        return PNGSequenceWriter(path, overwrite=overwrite, command=command)
    raise _unsupported_suffix(path)
