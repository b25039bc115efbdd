"""Test videos of the protocol: input and hold-out frames, the seeded shot order, frames at the model's size.

Clips of the ``fsth-eval`` layout carry ``input`` / ``holdout`` roles; for other prepared
sets the dataset's ``holdout_fraction`` tail is held out. Hold-out frames are removed from
the inputs whatever the roles say, so a shot is never a frame that is measured.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.data.episodes import EpisodeDataset
from talkinghead.data.holdout import evenly_spaced
from talkinghead.evaluation.options import EvaluateOptions


@dataclass
class TestVideo:
    """One test clip: its frames (uint8, at the evaluation size) and ground-truth landmarks."""

    key: str
    identity: str
    index: int
    input_frames: np.ndarray  # (n,) frame numbers the shots are drawn from
    targets: np.ndarray  # (m,) hold-out frame numbers evaluated
    consecutive: bool  # hold-out targets are consecutive frames of the source video (E_warp)
    images: dict[int, np.ndarray]  # frame -> (s, s, 3) uint8
    landmarks68: np.ndarray  # (num_frames, 68, 2) at the evaluation size
    dense: np.ndarray  # (num_frames, N, 3) at the evaluation size




def shot_order(video_key: str, input_frames: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation of a video's input frames: the K shots are its first K entries."""
    rng = np.random.default_rng([seed, zlib.crc32(video_key.encode())])
    return input_frames[rng.permutation(len(input_frames))]


def load_test_video(dataset: EpisodeDataset, index: int, size: int, options: EvaluateOptions) -> TestVideo:
    """Clip ``index``: its shot order, evaluated hold-out frames and the frames they need, at ``size``."""
    record = dataset.records[index]
    clip = dataset.clip(index)
    inputs = dataset.input_frames(index)
    held = dataset.holdout_frames(index)
    inputs = np.setdiff1d(inputs, held)  # never condition on a hold-out frame
    targets = held if options.targets_per_video == 0 else evenly_spaced(held, options.targets_per_video)
    order = shot_order(record.key, inputs, options.seed)
    needed = set(targets.tolist()) | set(order[: max(options.ks)].tolist())
    images = {}
    for frame in sorted(needed):
        image = clip.frame(frame)
        if image.shape[0] != size:
            interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_CUBIC
            image = cv2.resize(image, (size, size), interpolation=interpolation)
        images[frame] = image
    scale = size / dataset.dataset.size
    source_indices = clip.meta.get("frame_indices") or list(range(record.num_frames))
    chosen = [source_indices[t] for t in targets.tolist()]
    consecutive = len(chosen) > 1 and all(b - a == 1 for a, b in zip(chosen, chosen[1:]))
    return TestVideo(
        key=record.key, identity=record.identity, index=index, input_frames=order, targets=targets,
        consecutive=consecutive, images=images,
        landmarks68=np.asarray(clip.landmarks68, np.float64)[..., :2] * scale,
        dense=np.asarray(clip.dense_landmarks, np.float32) * scale,
    )
