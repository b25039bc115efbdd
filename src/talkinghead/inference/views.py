"""What an output video shows: the result crop, the pasted photo, or source | driving | result."""

from __future__ import annotations

import cv2
import numpy as np

from talkinghead.data.crop import crop_image
from talkinghead.inference.pipeline import AnimatedFrame
from talkinghead.inference.source import SourceFace

VIEWS = ("result", "side_by_side")


def resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    """Scale an RGB image to ``height`` rows, keeping its aspect ratio."""
    h, w = image.shape[:2]
    if h == height:
        return image
    width = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interp)


def hstack(images: list[np.ndarray], height: int) -> np.ndarray:
    """Images side by side at one height."""
    return np.concatenate([resize_to_height(im, height) for im in images], axis=1)


class FrameView:
    """Turns an :class:`AnimatedFrame` into the picture one output file shows.

    Args:
        view: ``result`` (the synthesised crop, or the pasted photo with paste-back) or
            ``side_by_side`` (source | driving | result at one height).
        reference: the source reference photo.
        size: height in pixels of crop views (the model's size unless upscaled for viewing).
        paste_back: show the full pasted photo instead of the crop.
    """

    def __init__(self, view: str, reference: SourceFace, size: int, *, paste_back: bool = False):
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        self.view = view
        self.size = size
        self.paste_back = paste_back
        self.source_panel = reference.photo if paste_back else reference.crop

    def __call__(self, frame: AnimatedFrame) -> np.ndarray:
        if self.paste_back:
            if frame.pasted is None:
                raise ValueError("this view shows pasted frames; animate with paste_back=True")
            result = frame.pasted
        else:
            result = resize_to_height(frame.image, self.size)
        if self.view == "result":
            return result
        height = result.shape[0]
        if self.paste_back:
            driving = frame.driving
        else:
            driving = crop_image(frame.driving, frame.driving_box, self.size)
        return hstack([self.source_panel, driving, result], height)
