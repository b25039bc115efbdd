"""K-shot training episodes: K source frames and one target frame of the same clip.

FSTH §3.2 (and LSR's training, which follows it): each episode draws a video, ``K`` of
its frames to compute the person embedding from, and one more frame of the same video,
not among them, that the generator must reproduce from its landmarks. Here one item is
one clip of a prepared dataset; the frames it draws depend only on
``(seed, epoch, clip index)``, so episodes are reproducible, differ from epoch to epoch,
and are the same whichever worker or rank loads them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from talkinghead.data.dataset_format import ClipRecord, DatasetError, PreparedClip, PreparedDataset
from talkinghead.data.rasterize import RasterStyle, get_rasterizer, image_to_tensor

# Frame roles of evaluation layouts (``meta.json`` ``frame_roles``).
HOLDOUT_ROLE = "holdout"
INPUT_ROLE = "input"

_MAX_LISTED = 10  # clips named in an error message before "and N more"


def _list_clips(records: list[ClipRecord]) -> str:
    names = [f"{r.key} ({r.num_frames} frames)" for r in records[:_MAX_LISTED]]
    more = len(records) - len(names)
    return ", ".join(names) + (f" and {more} more" if more else "")


class EpisodeDataset(Dataset):
    """K-shot episodes of one split of a prepared dataset, one item per clip.

    Every item samples ``k + 1`` distinct frames of its clip: the target frame and ``k``
    source frames (sorted by frame index), with a NumPy generator seeded from
    ``(seed, epoch, index)``. Call :meth:`set_epoch` before each epoch, like
    ``DistributedSampler.set_epoch``; the epoch lives in shared memory, so DataLoader
    workers (persistent ones included) see the new value as long as it is set before the
    epoch's iterator is created.

    Clips with too few frames: by default (``min_frames=None``) every clip of the split
    must have at least ``k + 1`` frames, and construction fails with a ValueError naming
    the clips that do not. With ``min_frames`` set (at least ``k + 1``), clips with fewer
    frames are left out instead and listed in :attr:`skipped`.

    Evaluation layouts store per-frame roles (``input``/``holdout``). Training episodes
    draw from every frame regardless; :meth:`input_frames` and :meth:`holdout_frames` give
    the roles for evaluation code.

    Args:
        dataset: a dataset folder written by ``talkinghead prepare``, or its reader.
        split: which split to serve (``train``/``test``), or None for all clips.
        k: number of source frames per episode.
        size: side of the returned images; None keeps the dataset's size, other values
            resize frames (area when shrinking, bicubic when enlarging) and segmentation
            maps (nearest) and draw the landmarks directly at that size.
        landmark_style: rasteriser name, the model's ``config.model.landmark_style`` (``fsth``:
            iBUG parts, ``dense``: per-connection colours); None for a dataset whose clips are
            read directly and whose episodes are never drawn (evaluation).
        seed: base seed of the frame sampling.
        require_segmentation: fail at construction when the dataset has no segmentation maps.
        min_frames: leave out clips with fewer frames (see above); None keeps every clip.
        holdout_fraction: fraction of every clip's frames, taken from its end, that
            training episodes never draw; :meth:`holdout_frames` returns them (for clips
            without stored roles) so a run can measure reconstruction on new frames of the
            people it trains on. The clip-length checks above count only the other frames.

    Items are dicts of tensors::

        source_images       (k, 3, h, w) float32 in [-1, 1]
        source_landmarks    (k, 3, h, w) float32 in [-1, 1], rasterised landmarks
        target_image        (3, h, w)
        target_landmarks    (3, h, w)
        target_points       (68, 2) iBUG-68 landmarks of the target, in pixels of the (h, w) image
        target_segmentation (h, w) int64 class indices (only when the dataset has maps)
        identity_index      () int64 index into :attr:`identities`
        clip_index          () int64 item index
        source_dense        (k, 478, 2) dense landmarks of the sources in pixels (only with dense_points)
        target_dense        (478, 2) dense landmarks of the target (only with dense_points)
        source_indices      (k,) int64 frame indices in the clip
        target_index        () int64
    """

    def __init__(
        self,
        dataset: str | Path | PreparedDataset,
        split: str | None = "train",
        k: int = 4,
        size: int | None = None,
        *,
        landmark_style: RasterStyle | None,
        seed: int = 0,
        require_segmentation: bool = False,
        min_frames: int | None = None,
        holdout_fraction: float = 0.0,
        dense_points: bool = False,
    ):
        self.dataset = dataset if isinstance(dataset, PreparedDataset) else PreparedDataset(dataset)
        if k < 1:
            raise ValueError(f"k must be at least 1 source frame, got {k}")
        self.k = k
        self.size = self.dataset.size if size is None else int(size)
        if self.size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.rasterizer = get_rasterizer(landmark_style) if landmark_style is not None else None
        self.seed = int(seed)
        self.split = split
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
        self.holdout_fraction = float(holdout_fraction)
        self.dense_points = bool(dense_points)

        segmentation_source = self.dataset.info.get("segmentation", {}).get("source")
        self.has_segmentation = segmentation_source not in (None, "none")
        if require_segmentation and not self.has_segmentation:
            raise ValueError(
                f"{self.dataset.root}: this dataset has no segmentation maps (segmentation source "
                f"{segmentation_source!r}), and they are required here; prepare it again with "
                "`segmentation: landmarks` or `face-parsing`"
            )

        records = self.dataset.split(split)
        if not records:
            splits = sorted({r.split for r in self.dataset.records})
            raise ValueError(f"{self.dataset.root}: no clips in split {split!r}; the dataset has splits {splits}")
        needed = k + 1
        if min_frames is None:
            short = [r for r in records if self._num_train_frames(r.num_frames) < needed]
            if short:
                raise ValueError(
                    f"{self.dataset.root}: {len(short)} clip(s) of split {split!r} have fewer than "
                    f"k + 1 = {needed} frames: {_list_clips(short)}. Lower k, prepare the dataset again "
                    f"with frames_per_clip >= {needed}, or pass min_frames={needed} to leave these clips out"
                )
            self.skipped: list[ClipRecord] = []
        else:
            if min_frames < needed:
                raise ValueError(f"min_frames must be at least k + 1 = {needed}, got {min_frames}")
            self.skipped = [r for r in records if self._num_train_frames(r.num_frames) < min_frames]
            records = [r for r in records if self._num_train_frames(r.num_frames) >= min_frames]
            if not records:
                raise ValueError(
                    f"{self.dataset.root}: every clip of split {split!r} has fewer than {min_frames} "
                    "frames; lower k / min_frames or prepare the dataset with more frames per clip"
                )
        self.records: list[ClipRecord] = records
        # Identities of the whole split (clips left out keep their identity's index), so
        # identity indices do not depend on k or min_frames.
        self.identities: list[str] = self.dataset.identities(split)
        self._identity_index = {identity: i for i, identity in enumerate(self.identities)}
        # Shared memory: DataLoader workers read the value the main process sets.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def _num_train_frames(self, num_frames: int) -> int:
        """Frames of a clip that training episodes may draw (the head of the clip)."""
        if self.holdout_fraction == 0.0 or num_frames < 2:
            return num_frames
        held = min(num_frames - 1, max(1, int(np.ceil(self.holdout_fraction * num_frames))))
        return num_frames - held

    @property
    def num_identities(self) -> int:
        """Number of distinct identities in the split (rows of a projection discriminator)."""
        return len(self.identities)

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose episodes the next iteration serves."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.records)

    def identity_index(self, index: int) -> int:
        """Index into :attr:`identities` of clip ``index``."""
        return self._identity_index[self.records[index].identity]

    def clip(self, index: int) -> PreparedClip:
        """Reader of clip ``index``."""
        return self.dataset.clip(self.records[index])

    def input_frames(self, index: int) -> np.ndarray:
        """(n,) int64 frames of clip ``index`` an evaluation may condition on (all without roles)."""
        roles = self.clip(index).frame_roles
        if roles is None:
            return np.arange(self.records[index].num_frames, dtype=np.int64)
        return np.flatnonzero(np.asarray(roles) == INPUT_ROLE).astype(np.int64)

    def holdout_frames(self, index: int) -> np.ndarray:
        """(n,) int64 frames of clip ``index`` held out for evaluation.

        Stored roles win; without them, the tail set aside by ``holdout_fraction`` (none
        when it is 0).
        """
        roles = self.clip(index).frame_roles
        if roles is None:
            num_frames = self.records[index].num_frames
            return np.arange(self._num_train_frames(num_frames), num_frames, dtype=np.int64)
        return np.flatnonzero(np.asarray(roles) == HOLDOUT_ROLE).astype(np.int64)

    def sample_frames(self, index: int, epoch: int | None = None) -> tuple[np.ndarray, int]:
        """The episode's frames of clip ``index``: ((k,) sorted source indices, target index).

        Depends only on ``(seed, epoch, index)``; ``epoch`` defaults to the current one.
        """
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, index])
        available = self._num_train_frames(self.records[index].num_frames)
        chosen = rng.choice(available, size=self.k + 1, replace=False)
        return np.sort(chosen[1:]).astype(np.int64), int(chosen[0])

    def frame_image(self, clip: PreparedClip, frame: int) -> tuple[np.ndarray, int]:
        """(size, size, 3) uint8 RGB frame, and the side of the stored frame."""
        image = clip.frame(frame)
        height, width = image.shape[:2]
        if height != width:
            raise DatasetError(f"{clip.frame_path(frame)}: frame is {width}x{height}, prepared frames are square")
        if width != self.size:
            interpolation = cv2.INTER_AREA if width > self.size else cv2.INTER_CUBIC
            image = cv2.resize(image, (self.size, self.size), interpolation=interpolation)
        return image, width

    def _points68(self, clip: PreparedClip, frame: int, stored_size: int) -> torch.Tensor:
        """(68, 2) float32 iBUG-68 points of ``frame`` in pixels of the (size, size) item image.

        Stored points are in the stored frame's pixels; resizing maps pixel centres, so a point
        moves by ``(p + 0.5) * scale - 0.5``. The identity loss aligns face chips with them.
        """
        return self.scaled_points(clip.landmarks68[frame], stored_size)

    def scaled_points(self, points: np.ndarray, stored_size: int) -> torch.Tensor:
        """(n, 2) float32 of stored (n, >= 2) points, in pixels of the (size, size) item image."""
        points = np.asarray(points[:, :2], np.float32)
        scale = self.size / stored_size
        return torch.from_numpy((points + 0.5) * scale - 0.5)

    def _segmentation(self, clip: PreparedClip, frame: int) -> torch.Tensor:
        labels = clip.segmentation(frame)  # (H, W) uint8
        if labels.ndim != 2:
            raise DatasetError(f"{clip.folder}: segmentation map {frame} is not a single-channel label image")
        if labels.shape[0] != self.size:
            labels = cv2.resize(labels, (self.size, self.size), interpolation=cv2.INTER_NEAREST)
        return torch.from_numpy(labels.astype(np.int64))  # (h, w)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """Episode of clip ``index`` for the current epoch, or of ``(index, epoch)``.

        Samplers that span several epochs (the trainer's resumable sampler) pass the
        epoch with the index, so no shared state decides which frames are drawn.
        """
        epoch = None
        if isinstance(index, tuple):
            index, epoch = index
        if not 0 <= index < len(self.records):
            raise IndexError(f"episode index {index} out of range for {len(self.records)} clips")
        source_indices, target_index = self.sample_frames(index, epoch)
        return self.episode(index, source_indices, target_index)

    def episode(self, index: int, source_indices: np.ndarray, target_index: int) -> dict[str, torch.Tensor]:
        """The item of clip ``index`` for chosen frames (evaluation picks its own frames).

        Args:
            index: clip index.
            source_indices: (n,) frames the person is encoded from (n may differ from k).
            target_index: the frame to reproduce.
        """
        if self.rasterizer is None:
            raise ValueError("this EpisodeDataset was built with landmark_style=None and draws no episodes; "
                             "pass the model's config.model.landmark_style")
        record = self.records[index]
        clip = self.dataset.clip(record)
        source_indices = np.asarray(source_indices, dtype=np.int64)
        num_sources = len(source_indices)
        points = clip.landmarks68 if self.rasterizer.landmarks == "ibug68" else clip.dense_landmarks
        if len(points) < record.num_frames:
            raise DatasetError(
                f"{clip.folder}: landmarks for {len(points)} frames but {record.num_frames} frames listed; "
                "the clip is damaged, prepare it again"
            )
        images, landmark_images = [], []
        for frame in [*source_indices.tolist(), int(target_index)]:
            image, stored_size = self.frame_image(clip, frame)
            images.append(image)
            landmark_images.append(self.rasterizer(points[frame], self.size, stored_size))
        images_t = image_to_tensor(np.stack(images))  # (k + 1, 3, h, w), the target last
        landmarks_t = image_to_tensor(np.stack(landmark_images))  # (k + 1, 3, h, w)
        item = {
            "source_images": images_t[:num_sources],  # (k, 3, h, w)
            "source_landmarks": landmarks_t[:num_sources],  # (k, 3, h, w)
            "target_image": images_t[num_sources],  # (3, h, w)
            "target_landmarks": landmarks_t[num_sources],  # (3, h, w)
            "target_points": self._points68(clip, int(target_index), stored_size),  # (68, 2); target read last
            "identity_index": torch.tensor(self._identity_index[record.identity], dtype=torch.int64),
            "clip_index": torch.tensor(index, dtype=torch.int64),
            "source_indices": torch.from_numpy(source_indices),  # (k,)
            "target_index": torch.tensor(int(target_index), dtype=torch.int64),
        }
        if self.dense_points:
            dense = clip.dense_landmarks
            item["source_dense"] = torch.stack([self.scaled_points(dense[f], stored_size) for f in source_indices.tolist()])
            item["target_dense"] = self.scaled_points(dense[int(target_index)], stored_size)
        if self.has_segmentation:
            item["target_segmentation"] = self._segmentation(clip, target_index)  # (h, w)
        return item
