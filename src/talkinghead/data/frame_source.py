"""One entry point for every kind of frame source: a video file, a photo, a folder or a list of images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from talkinghead.config.media import DEFAULT_FPS
from talkinghead.data.image_sequence import ImageSequence
from talkinghead.data.media_info import (
    IMAGE_EXTENSIONS,
    FrameSource,
    PathLike,
    VideoReadError,
    is_image_file,
    missing_error,
)
from talkinghead.data.video import VideoFile


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
            raise missing_error(path, "input")
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


__all__ = ["open_frame_source"]
