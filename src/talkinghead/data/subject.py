"""A new person's few-shot images, prepared on the fly like training data.

Subject fine-tuning (LSR §3.5) and animation start from a handful of photos or a short
video of someone the model has never seen. They go through the same detector, crop and
landmark rasteriser as the training data (``talkinghead prepare``), so the model sees
them exactly as it saw its training frames: each photo is its own clip (its own crop);
a video is one clip with ``frames_per_video`` frames sampled uniformly in time.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talkinghead.config.prepare import PrepareConfig
from talkinghead.data.dataset_format import PreparedDataset
from talkinghead.data.prepare import RunOptions, prepare_dataset
from talkinghead.data.rasterize import get_rasterizer, image_to_tensor
from talkinghead.data.media_info import is_image_file, is_video_file
from talkinghead.errors import TalkingHeadError


class SubjectError(TalkingHeadError, ValueError):
    """Subject images that cannot be used (unreadable, no face, nothing given)."""


@dataclass
class SubjectFrames:
    """Prepared frames of one person.

    Attributes:
        images: (n, 3, s, s) float32 in [-1, 1], square crops at the model's size.
        landmarks: (n, c, s, s) rasterised landmark images.
        sources: where each frame came from (``file`` or ``file#frame``).
    """

    images: torch.Tensor
    landmarks: torch.Tensor
    sources: list[str]

    def __len__(self) -> int:
        return len(self.images)


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    """Image and video files named directly or found (not recursively) in given folders."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise SubjectError(f"{path}: no such file or folder")
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and (is_image_file(p) or is_video_file(p)))
            if not found:
                raise SubjectError(f"{path}: the folder holds no image or video files")
            files += found
        elif is_image_file(path) or is_video_file(path):
            files.append(path)
        else:
            raise SubjectError(f"{path}: not an image or video file")
    if not files:
        raise SubjectError("no subject images were given")
    return files


def prepare_subject(
    inputs: list[str | Path],
    *,
    size: int,
    landmark_style: str,
    frames_per_video: int = 8,
    prepare: PrepareConfig | None = None,
    work_dir: str | Path | None = None,
) -> SubjectFrames:
    """Detect, crop and rasterise a person's photos / video frames.

    Args:
        inputs: image files, video files, or folders of them.
        size: the model's image size.
        landmark_style: the model's rasteriser (its ``config.model.landmark_style``).
        frames_per_video: frames sampled from each video.
        prepare: detector and crop settings (defaults to ``PrepareConfig()``: mediapipe,
            head crop), the same as the training data used.
        work_dir: where the prepared frames are kept (a temporary folder when None).

    Raises:
        SubjectError: a file cannot be read or shows no usable face (the message names it).
    """
    files = collect_inputs(inputs)
    base = prepare or PrepareConfig()
    with tempfile.TemporaryDirectory(prefix="talkinghead-subject-") as tmp:
        root = Path(work_dir) if work_dir is not None else Path(tmp)
        problems = []
        for index, path in enumerate(files):
            config = dataclasses.replace(
                base,
                layout="auto",
                size=size,
                segmentation="none",
                min_frames=1,
                frames_per_clip=frames_per_video if is_video_file(path) else "all",
                split_by="none",
            )
            out = root / f"{index:03d}"
            summary = prepare_dataset(path, out, config, RunOptions(workers=1, progress=False))
            if summary.clips_failed or summary.dataset_clips == 0:
                reasons = ", ".join(sorted(summary.failures)) or "no usable face"
                problems.append(f"{path}: {reasons}")
        if problems:
            raise SubjectError(
                "these subject images could not be used:\n  " + "\n  ".join(problems)
                + "\nUse photos with one clearly visible face (or pass only the good ones)"
            )
        rasterizer = get_rasterizer(landmark_style)
        images, landmarks, sources = [], [], []
        for index, path in enumerate(files):
            dataset = PreparedDataset(root / f"{index:03d}")
            for record in dataset.records:
                clip = dataset.clip(record)
                points = clip.landmarks68 if rasterizer.landmarks == "ibug68" else clip.dense_landmarks
                for frame in range(record.num_frames):
                    image = clip.frame(frame)
                    images.append(image)
                    landmarks.append(rasterizer(points[frame], size, image.shape[0]))
                    sources.append(path.name if record.num_frames == 1 else f"{path.name}#{frame}")
        if not images:
            raise SubjectError(f"no face was found in {', '.join(str(f) for f in files)}")
        return SubjectFrames(
            images=image_to_tensor(np.stack(images)),
            landmarks=image_to_tensor(np.stack(landmarks)),
            sources=sources,
        )
