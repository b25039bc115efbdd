"""Temporal super-resolution as a streaming post-processor: ``talkinghead upscale`` and ``animate --upscale``.

Frames stream through a window of ``2r + 1`` frames (a ``deque``): frame ``t`` comes out once
frame ``t + r`` has come in, so memory holds at most the window plus one batch of frames
waiting for the network, however long the video. Every input frame gives exactly one output
frame, in order; the first and last ``r`` frames get full windows by edge replication (the
first frame stands in for the frames before it, the last for those after it), as in training.

Python API::

    upscaler = StreamingUpscaler.from_pretrained()          # the bundled models/upscale
    for big in upscaler.stream(frames):                     # (h, w, 3) uint8 -> (2h, 2w, 3)
        ...
    upscale_video("in.mp4", "out.mp4")                      # a whole file, audio kept
    frames = upscale_animated(pipeline.animate(driving), upscaler)   # AnimatedFrame.image doubled
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from talkinghead.config.media import DEFAULT_FPS
from talkinghead.data.frame_source import open_frame_source
from talkinghead.data.media_info import VideoReadError, is_video_file, media_warnings
from talkinghead.errors import InputNotFoundError, InvalidInputError
from talkinghead.inference.pipeline import AnimatedFrame
from talkinghead.inference.writers import VIDEO_SUFFIXES, OutputExistsError, open_writer
from talkinghead.models.temporal_sr import TemporalSuperResolution, load_upscaler
from talkinghead.utils.bundled import bundled_path
from talkinghead.utils.device import available_memory, resolve_device
from talkinghead.utils.output_guard import check_output_location, check_writable, output_errors
from talkinghead.utils.preflight import check_free_space

BUNDLED_UPSCALER = Path("models") / "upscale"
# Peak memory of the network per input pixel and window of a batch (activations at 2x size),
# measured on CPU with the bundled model: about 1.6 KB (256 x 256 frames, batch 4: +1.9 GB RSS).
BYTES_PER_PIXEL_AND_WINDOW = 1600
Item = TypeVar("Item")
log = logging.getLogger(__name__)


def upscaler_path(model: str | Path | None = None) -> Path:
    """The release folder of ``model``, or of the bundled ``models/upscale`` when None.

    Raises:
        InputNotFoundError: the folder does not exist (named, with what to do).
    """
    if model is None:
        path = bundled_path(BUNDLED_UPSCALER)
        if not (path / "config.json").is_file():
            raise InputNotFoundError(f"{path}: the bundled super-resolution model is missing from this "
                                     "installation; reinstall talkinghead or give --model PATH")
        return path
    path = Path(model)
    if not path.is_dir():
        raise InputNotFoundError(f"{path}: no such super-resolution model folder; give a release folder "
                                 "(config.json + upscaler.safetensors), e.g. RUN_DIR/release of `talkinghead train "
                                 "configs/upscale/sr512.yaml`")
    return path


def estimated_output_bytes(frames: int, height: int, width: int, output: Path) -> int:
    """A generous size of ``frames`` frames of ``height`` x ``width`` written to ``output``.

    PNG frames: half the raw RGB size each (photographic frames compress 2-4x); a video: a
    twenty-fifth of it, twice (the encoded file and the muxed copy exist together at the end).
    """
    raw = frames * height * width * 3
    return raw // 2 if output.suffix.lower() not in VIDEO_SUFFIXES else 2 * raw // 25


def check_upscale_memory(width: int, height: int, batch_size: int, device: str | torch.device, where: str) -> None:
    """Refuse, before any memory is taken, frames whose upscaling would not fit the device's memory.

    Raises:
        InvalidInputError: the estimate exceeds the memory available now (the message gives
            both and what to do).
    """
    needed = BYTES_PER_PIXEL_AND_WINDOW * width * height * batch_size
    available = available_memory(device)
    if available is not None and needed > available:
        largest = int((available / (BYTES_PER_PIXEL_AND_WINDOW * batch_size)) ** 0.5)
        raise InvalidInputError(
            f"{where}: frames of {width}x{height} need about {needed / 2**30:.1f} GB to upscale with --batch-size "
            f"{batch_size}, but {torch.device(device).type} memory has {available / 2**30:.1f} GB free; downscale the "
            f"input (to about {largest}x{largest} or less) or lower --batch-size"
        )


class StreamingUpscaler:
    """Doubles the resolution of a stream of frames with a :class:`TemporalSuperResolution`.

    Args:
        network: the trained network (eval mode).
        device: where it runs.
        batch_size: windows per network call (memory holds up to ``window + batch_size`` frames).
    """

    def __init__(self, network: TemporalSuperResolution, device: str | torch.device = "cpu", batch_size: int = 4):
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.batch_size = batch_size
        self.num_neighbors = network.config.num_neighbors
        self.window = 2 * self.num_neighbors + 1

    @classmethod
    def from_pretrained(
        cls, model: str | Path | None = None, *, device: str | torch.device = "auto", batch_size: int = 4
    ) -> "StreamingUpscaler":
        """Load a release folder (default: the bundled ``models/upscale``)."""
        device = resolve_device(device)
        return cls(load_upscaler(upscaler_path(model), device=device), device, batch_size)

    @property
    def max_buffered_frames(self) -> int:
        """The most input frames :meth:`stream_items` holds at once (window plus one batch)."""
        return self.window + self.batch_size

    @torch.no_grad()
    def _run(self, windows: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
        """Super-resolve a batch of windows of (h, w, 3) uint8 frames -> (2h, 2w, 3) uint8 each."""
        batch = torch.from_numpy(np.stack([np.stack(w) for w in windows]))  # (b, 2r+1, h, w, 3)
        batch = batch.to(self.device).permute(0, 1, 4, 2, 3).float() / 255.0  # (b, 2r+1, 3, h, w)
        out = self.network(batch).clamp_(0, 1).mul_(255).round_().to(torch.uint8)  # (b, 3, 2h, 2w)
        return list(out.permute(0, 2, 3, 1).cpu().numpy())

    def stream_items(
        self, items: Iterable[Item], image_of: Callable[[Item], np.ndarray]
    ) -> Iterator[tuple[Item, np.ndarray]]:
        """Yield ``(item, upscaled image)`` for every item, in order, with bounded memory.

        Args:
            items: anything carrying a frame (an array, an :class:`AnimatedFrame`, ...).
            image_of: the (h, w, 3) uint8 RGB frame of an item; all frames must share a size.

        Yields:
            Each item with its (2h, 2w, 3) uint8 frame, as soon as the frames after it that
            its window needs have arrived (``r`` frames later; at the end, at once).
        """
        window: deque = deque(maxlen=self.window)  # (item, frame) of the frames around the next centre
        pending: list[tuple[Any, tuple[np.ndarray, ...]]] = []  # centres waiting for a network call
        received = 0
        emitted = 0
        size = None

        def flush() -> Iterator[tuple[Item, np.ndarray]]:
            results = self._run([frames for _, frames in pending])
            yield from zip((item for item, _ in pending), results)
            pending.clear()

        def push(entry) -> Iterator[tuple[Item, np.ndarray]]:
            nonlocal emitted
            window.append(entry)
            if len(window) == self.window:
                # The centre's own item: the one r places from the end of the window.
                pending.append((window[self.num_neighbors][0], tuple(frame for _, frame in window)))
                emitted += 1
                if len(pending) == self.batch_size:
                    yield from flush()

        for item in items:
            frame = np.ascontiguousarray(image_of(item))
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise InvalidInputError(f"frame {received}: expected an (h, w, 3) uint8 RGB image, got "
                                        f"{frame.dtype} {frame.shape}")
            if size is None:
                size = frame.shape
                # Edge replication at the start: the first frame stands for the r frames before it.
                for _ in range(self.num_neighbors):
                    window.append((None, frame))
            elif frame.shape != size:
                raise InvalidInputError(f"frame {received}: size {frame.shape[:2]} differs from the first frame's {size[:2]}")
            received += 1
            yield from push((item, frame))
        # Edge replication at the end: the last frame stands for the r frames after it; only as
        # many centres as frames came in (a stream shorter than the window is handled too).
        while emitted < received:
            yield from push((None, window[-1][1]))
        if pending:
            yield from flush()
        window.clear()

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Upscale a stream of (h, w, 3) uint8 RGB frames; one (2h, 2w, 3) frame out per frame in."""
        for _, image in self.stream_items(frames, lambda frame: frame):
            yield image


def upscale_animated(frames: Iterable[AnimatedFrame], upscaler: StreamingUpscaler) -> Iterator[AnimatedFrame]:
    """The animation stream with every synthesised crop (``image``) at twice its size."""
    for frame, image in upscaler.stream_items(frames, lambda f: f.image):
        yield dataclasses.replace(frame, image=image)


@dataclass
class UpscaleSummary:
    """What :func:`upscale_video` did."""

    frames: int
    input_size: tuple[int, int]
    seconds: float
    output: Path
    warnings: list[str] = dataclasses.field(default_factory=list)

    def format(self) -> str:
        h, w = self.input_size
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        line = (f"upscaled {self.frames} frames from {w}x{h} to {2 * w}x{2 * h} in {self.seconds:.1f} s "
                f"({rate:.1f} frames/s) -> {self.output}")
        return line + "".join(f"; warning: {warning}" for warning in self.warnings)


def upscale_video(
    input_path: str | Path,
    output_path: str | Path,
    *,
    model: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 4,
    fps: float = DEFAULT_FPS,
    overwrite: bool = False,
    progress: bool = True,
) -> UpscaleSummary:
    """Write ``input_path`` (a video, a folder of frames or an image) at twice the size.

    Every frame is kept; the frame rate and audio of a video are kept. The output is written
    under a temporary name and renamed when complete.

    Args:
        input_path: the video to upscale.
        output_path: ``.mp4``/``.mov``/``.mkv``, or a folder for PNG frames.
        model: a super-resolution release folder (default: the bundled ``models/upscale``).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: windows per network call.
        fps: frame rate for a folder of frames (videos keep their own).
        overwrite: replace an existing output.
        progress: show a progress bar.

    Raises:
        InputNotFoundError, VideoReadError: the input is missing or not a readable video (the
            message names the file).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise InputNotFoundError(f"{input_path}: no such file or folder")
    check_output_location(output_path, {"input video": input_path, "model": model})
    if output_path.exists() and not overwrite:
        raise OutputExistsError(output_path)
    check_writable(output_path)
    source = open_frame_source(input_path, fps=fps)
    info = source.info  # probes the file: an unreadable one fails here, named
    if info.num_frames == 0:
        raise VideoReadError(input_path, "empty", f"{input_path}: holds no frames; give a video with frames")
    check_upscale_memory(info.width, info.height, batch_size, resolve_device(device), str(input_path))
    check_free_space(output_path, estimated_output_bytes(info.num_frames, 2 * info.height, 2 * info.width, output_path),
                     option="OUTPUT", what=f"{info.num_frames} frames at {2 * info.width}x{2 * info.height}")
    warnings = media_warnings(info)
    for warning in warnings:
        log.warning("%s", warning)
    upscaler = StreamingUpscaler.from_pretrained(model, device=device, batch_size=batch_size)
    video_fps = info.fps if is_video_file(input_path) else fps
    audio = input_path if is_video_file(input_path) and info.has_audio else None
    start = time.perf_counter()
    count = 0
    first_size = (0, 0)
    frames = _checked_frames(source, info, warnings)
    with output_errors(output_path), open_writer(output_path, video_fps, audio_from=audio, overwrite=overwrite,
                                                 max_duration=info.num_frames / video_fps, command="upscale") as writer:
        bar = tqdm(total=info.num_frames, unit="frame", desc="upscale", disable=not progress, dynamic_ncols=True)
        try:
            for image in upscaler.stream(frames):
                if count == 0:
                    first_size = (image.shape[0] // 2, image.shape[1] // 2)
                writer.write(image)
                count += 1
                bar.update(1)
        finally:
            bar.close()
    return UpscaleSummary(frames=count, input_size=first_size, seconds=time.perf_counter() - start, output=output_path,
                          warnings=warnings)


def _checked_frames(source, info, warnings: list[str]) -> Iterator[np.ndarray]:
    """The input's frames; a frame of another size than the first is refused by its file name.

    A video that breaks off while reading keeps the frames before the break (with a warning
    appended to ``warnings``), as ``animate`` does.
    """
    paths = getattr(source, "paths", None)  # an image sequence names its files
    try:
        for index, _, image in source.frames():
            if image.shape[:2] != (info.height, info.width):
                name = paths[index] if paths is not None else f"{info.path} frame {index}"
                first = paths[0] if paths is not None else "the first frame"
                raise InvalidInputError(
                    f"{name}: is {image.shape[1]}x{image.shape[0]} but {first} is {info.width}x{info.height}; "
                    "every frame must have the same size (resize or remove it)"
                )
            yield image
    except VideoReadError as err:
        if err.reason != "truncated":
            raise
        if info.truncated:  # already said before the work began (media_warnings)
            return
        warning = (f"{err.path}: reading stopped after {err.frames_read} frames ({err.reason}); "
                   "the frames before the break were upscaled")
        log.warning("%s", warning)
        warnings.append(warning)
