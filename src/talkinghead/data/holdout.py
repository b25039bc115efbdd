"""Reconstruction of held-out frames of known people, as training measures it.

For each of the first clips of an episode dataset, the person is encoded from ``k``
frames spread evenly over the frames training draws from, and frames the dataset holds
out (the tail of every clip, ``holdout_fraction``, or the ``holdout`` roles of an
evaluation layout) are reconstructed from their landmarks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from talkinghead.data.episodes import EpisodeDataset


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(b,) PSNR in dB of images in [-1, 1] (computed on the [0, 1] scale)."""
    mse = ((prediction.float() - target.float()) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(b,) mean absolute error of images in [-1, 1], on the [0, 1] scale."""
    return ((prediction.float() - target.float()) / 2).abs().flatten(1).mean(1)


def evenly_spaced(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` entries of ``frames`` spread evenly (all of them when there are fewer)."""
    if len(frames) <= count:
        return frames
    picks = np.linspace(0, len(frames) - 1, count).round().astype(np.int64)
    return frames[picks]


def holdout_batches(
    dataset: EpisodeDataset, *, num_clips: int, k: int, targets_per_clip: int
) -> Iterator[dict[str, torch.Tensor]]:
    """One batch per clip: its held-out targets, each with the same ``k`` source frames.

    Clips without held-out frames are skipped; if none has any, a ValueError says how
    to get some.
    """
    produced = 0
    for index in range(min(num_clips, len(dataset))):
        held = dataset.holdout_frames(index)
        if len(held) == 0:
            continue
        trained = np.setdiff1d(np.arange(dataset.records[index].num_frames), held)
        sources = evenly_spaced(trained, k)
        items = [dataset.episode(index, sources, int(t)) for t in evenly_spaced(held, targets_per_clip)]
        produced += 1
        yield {key: torch.stack([item[key] for item in items]) for key in items[0]}
    if produced == 0:
        raise ValueError(
            f"{dataset.dataset.root}: no clip has held-out frames to measure reconstruction on; "
            "set data.holdout_fraction > 0 (e.g. 0.1)"
        )
