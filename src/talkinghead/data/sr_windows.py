"""Reads the consecutive-frame segments of :mod:`talkinghead.data.sr_prepare` and samples windows.

A training sample is two adjacent centre frames ``t`` and ``t + 1`` of one segment, each with
its window of ``2r + 1`` low-resolution frames (indices outside the segment are clamped: edge
replication, as at the ends of a video) and its high-resolution target, cut to one random patch
at the same place in every frame (a head moves a few pixels between frames, so a fixed patch
keeps the temporal relation between the frames).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from talkinghead.data.sr_prepare import SR_DATASET_FILE
from talkinghead.errors import InputNotFoundError


def window_indices(center: int, num_neighbors: int, length: int) -> list[int]:
    """Frame indices of the window around ``center`` in a clip of ``length`` frames.

    Indices before the first or after the last frame are replaced by the first or last frame
    (edge replication), so every frame, the first and the last included, has a full window.
    """
    return [min(max(i, 0), length - 1) for i in range(center - num_neighbors, center + num_neighbors + 1)]


class SRWindowDataset:
    """The segments of one split of a prepared super-resolution folder, memory-mapped.

    Args:
        root: folder written by ``talkinghead prepare-sr``.
        split: ``train`` or ``test``.
    """

    def __init__(self, root: str | Path, split: str = "train"):
        self.root = Path(root)
        index_path = self.root / SR_DATASET_FILE
        if not index_path.is_file():
            raise InputNotFoundError(
                f"{index_path}: missing; prepare the data with "
                "`talkinghead prepare-sr PREPARED VIDEOS OUT` and point data_root at OUT"
            )
        self.index = json.loads(index_path.read_text())
        self.segments = [s for s in self.index["segments"] if s["split"] == split]
        if not self.segments:
            raise InputNotFoundError(f"{index_path}: lists no {split!r} segments")
        self.lr = [np.load(self.root / s["path"] / "lr.npy", mmap_mode="r") for s in self.segments]  # (t, h, w, 3)
        self.hr = [np.load(self.root / s["path"] / "hr.npy", mmap_mode="r") for s in self.segments]  # (t, 2h, 2w, 3)

    def __len__(self) -> int:
        return len(self.segments)

    def sample(
        self, generator: torch.Generator, batch_size: int, patch_size: int, num_neighbors: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of adjacent-centre pairs as random patches.

        Args:
            generator: the sampling stream (saved in checkpoints, so a resumed run samples
                the same batches).
            batch_size: pairs per batch.
            patch_size: low-resolution patch side.
            num_neighbors: frames on each side of a centre.

        Returns:
            ``windows`` (batch, 2, 2r + 1, 3, p, p) and ``targets`` (batch, 2, 3, 2p, 2p),
            float in [0, 1]; index 1 on the second axis is the frame after index 0.
        """
        windows, targets = [], []
        for _ in range(batch_size):
            k = int(torch.randint(len(self.segments), (1,), generator=generator))
            lr, hr = self.lr[k], self.hr[k]
            length, h, w = lr.shape[:3]
            t = int(torch.randint(max(length - 1, 1), (1,), generator=generator))
            y = int(torch.randint(h - patch_size + 1, (1,), generator=generator))
            x = int(torch.randint(w - patch_size + 1, (1,), generator=generator))
            flip = bool(torch.randint(2, (1,), generator=generator))
            centers = [t, min(t + 1, length - 1)]
            win = np.stack([lr[window_indices(c, num_neighbors, length), y : y + patch_size, x : x + patch_size]
                            for c in centers])  # (2, 2r+1, p, p, 3)
            tgt = np.stack([hr[c, 2 * y : 2 * (y + patch_size), 2 * x : 2 * (x + patch_size)] for c in centers])
            if flip:  # mirror faces: twice the poses for free
                win, tgt = win[..., ::-1, :], tgt[..., ::-1, :]
            windows.append(torch.from_numpy(np.ascontiguousarray(win)))
            targets.append(torch.from_numpy(np.ascontiguousarray(tgt)))
        windows_t = torch.stack(windows).permute(0, 1, 2, 5, 3, 4).float() / 255.0  # (b, 2, 2r+1, 3, p, p)
        targets_t = torch.stack(targets).permute(0, 1, 4, 2, 3).float() / 255.0  # (b, 2, 3, 2p, 2p)
        return windows_t, targets_t
