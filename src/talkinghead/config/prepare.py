"""Schema of ``talkinghead prepare``: how raw videos become a training/evaluation dataset.

Only settings that change what is written live here (they are stored in the dataset's
``dataset.json`` and compared on every later run into the same folder). Run-time options
that do not change the output (workers, shard, strictness) are command-line flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

from talkinghead.config.base import register_config
from talkinghead.config.media import DEFAULT_FPS

# The settings file of a prepared dataset folder (its format lives in data/dataset_format.py).
DATASET_FILE = "dataset.json"


@dataclass
class CropConfig:
    """One square crop per clip that contains the head over the whole clip.

    Args:
        mode: ``head`` computes the box from the landmarks of every sampled frame;
            ``none`` keeps frames as they are (already-cropped data such as VoxCeleb2).
        scale: side of the square relative to the larger side of the landmark box
            (union over the clip); values near 1.8 include hair and chin.
        vertical_offset: shift of the box centre upwards, as a fraction of the side,
            so that the forehead and hair fit.
    """

    mode: Literal["head", "none"] = "head"
    scale: float = 1.8
    vertical_offset: float = 0.1

    def __post_init__(self):
        if self.scale <= 0:
            raise ValueError(f"crop.scale must be positive, got {self.scale}")


@register_config("prepare")
@dataclass
class PrepareConfig:
    """Dataset preparation settings (see ``talkinghead prepare --help``).

    Args:
        layout: how INPUT is organised: ``auto`` (videos, image-sequence folders or one
            file), or ``fsth-eval`` for the LSR authors' FSTH evaluation subset.
        frames_per_clip: frames sampled uniformly in time per clip (LSR uses 10), or ``all``.
        landmarks: landmark backend: ``mediapipe`` (478 dense points), ``dlib68`` or ``fan``.
        size: side in pixels of the written square frames (LSR trains at 224).
        segmentation: oracle segmentation: ``landmarks`` (offline, landmark-derived),
            ``face-parsing`` (BiSeNet weights needed), ``auto`` (face-parsing when its weights
            are installed, else landmarks) or ``none``.
        image_format: ``jpg`` or ``png`` for the written frames.
        jpeg_quality: JPEG quality when ``image_format`` is ``jpg``.
        face_index: which face to follow when several are visible (0 = the largest clear face, ranked by size x confidence).
        min_face_size: faces whose landmark box is smaller than this (source pixels) are rejected.
        min_detection_confidence: minimum face detection score.
        min_frames: clips with fewer good frames than this are skipped.
        split_by: ``none`` (everything is ``train``) or ``identity`` (disjoint identities).
        test_fraction: fraction of identities assigned to ``test`` when splitting.
        split_seed: seed of the deterministic identity split.
        identity_from: how a clip's identity is found: ``auto`` (VoxCeleb2
            ``identity/video/clip.mp4`` when three levels deep, else the parent folder
            when two levels deep, else the file name), ``parent`` or ``stem``.
        image_sequence_fps: frame rate assumed for folders of images.
    """

    layout: Literal["auto", "fsth-eval"] = "auto"
    frames_per_clip: Union[int, Literal["all"]] = 10
    landmarks: Literal["mediapipe", "dlib68", "fan"] = "mediapipe"
    crop: CropConfig = None  # type: ignore[assignment]
    size: int = 256
    segmentation: Literal["auto", "landmarks", "face-parsing", "none"] = "auto"
    image_format: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = 95
    face_index: int = 0
    min_face_size: int = 40
    min_detection_confidence: float = 0.5
    min_frames: int = 2
    split_by: Literal["none", "identity"] = "none"
    test_fraction: float = 0.2
    split_seed: int = 0
    identity_from: Literal["auto", "parent", "stem"] = "auto"
    image_sequence_fps: float = DEFAULT_FPS

    def __post_init__(self):
        if self.crop is None:
            self.crop = CropConfig()
        if isinstance(self.frames_per_clip, int) and self.frames_per_clip < 1:
            raise ValueError(f"frames_per_clip must be >= 1 or 'all', got {self.frames_per_clip}")
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {self.min_frames}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")


def preparation_settings(root: str | Path) -> dict | None:
    """The ``talkinghead prepare`` settings a dataset was written with, or None without one.

    Trained models carry them (detector and crop scheme) so inference prepares a new
    person's photos exactly as the training frames were prepared.
    """
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except ValueError:
        return None
    config = info.get("config") if isinstance(info, dict) else None
    return dict(config) if isinstance(config, dict) else None
