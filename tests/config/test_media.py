"""Every frame-rate default of the package is config.media.DEFAULT_FPS."""

from __future__ import annotations

import inspect

import numpy as np
from PIL import Image

from talkinghead.config import default_of
from talkinghead.config.media import DEFAULT_FPS
from talkinghead.config.prepare import PrepareConfig
from talkinghead.data.image_sequence import ImageSequence
from talkinghead.inference.animate_job import AnimateJob
from talkinghead.inference.upscale import upscale_video


def test_every_fps_default_is_the_one_default(tmp_path):
    assert default_of(PrepareConfig, "image_sequence_fps") == DEFAULT_FPS
    assert default_of(AnimateJob, "fps") == DEFAULT_FPS
    assert inspect.signature(upscale_video).parameters["fps"].default == DEFAULT_FPS
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{i:02d}.png")
    info = ImageSequence.from_folder(tmp_path).info
    assert info.fps == DEFAULT_FPS and info.timestamps[1] == 1 / DEFAULT_FPS
