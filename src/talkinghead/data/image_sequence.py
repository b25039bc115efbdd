"""Photos, folders of frames and ordered lists of images as frame sources.

Frame ``i`` of a sequence is shown at ``i / fps`` seconds. Photos are read upright (EXIF
orientation applied), grayscale becomes three equal channels, alpha is dropped and 16-bit
images are rescaled. The contract is :mod:`talkinghead.data.media_info`.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps

from talkinghead.config.media import DEFAULT_FPS
from talkinghead.data.media_info import (
    IMAGE_EXTENSIONS,
    FrameTuple,
    PathLike,
    VideoInfo,
    VideoReadError,
    checked_indices,
    is_image_file,
    missing_error,
)

def _natural_key(path: Path) -> tuple:
    """Sort key that puts ``frame2`` before ``frame10``."""
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple(int(part) if part.isdigit() else part for part in parts), path.name


def natural_sorted(paths: Sequence[PathLike]) -> list[Path]:
    """``paths`` ordered by file name with digit runs compared as numbers."""
    return sorted((Path(path) for path in paths), key=_natural_key)


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
        raise missing_error(path, "image file")
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
        raise missing_error(path, "image file")
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
            raise missing_error(path, "image file")
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
    wanted = checked_indices(indices, source)
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
            raise missing_error(folder, "image folder")
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


__all__ = ["ImageSequence", "natural_sorted", "probe_images", "read_image", "read_image_frames"]
