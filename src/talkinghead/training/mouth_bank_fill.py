"""Fill a mouth generator's bank with real open mouths of the training people (the mouth stage does this once).

For every person of the training split, the frames (training frames only, not a clip's
held-out tail) whose inner-lip gap is at least ``MIN_OPENING`` of the eye-corner distance are
sorted by how wide the mouth opens, and ``bank_per_identity`` of them, spread evenly over
that range, are cut as mouth crops (:func:`~talkinghead.models.mouth_generator.cut_mouth`) at
the generator's frame size. Deterministic: the same dataset always gives the same bank.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn

from talkinghead.config.mouth import MouthGeneratorConfig
from talkinghead.data.episodes import EpisodeDataset
from talkinghead.data.rasterize import image_to_tensor
from talkinghead.models.mouth_generator import cut_mouth, mouth_opening
from talkinghead.utils.modules import unwrap

MIN_OPENING = 0.1


def _open_frames(dataset: EpisodeDataset) -> dict[int, list[tuple[float, int, int]]]:
    """{person: [(opening, clip, frame), ...]} of every training frame with the mouth open."""
    people: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
    for index in range(len(dataset)):
        clip = dataset.clip(index)
        held = set(dataset.holdout_frames(index).tolist())
        dense = torch.from_numpy(np.asarray(clip.dense_landmarks[:, :, :2], np.float32))
        openings = mouth_opening(dense).tolist()
        for frame, opening in enumerate(openings):
            if frame not in held and opening >= MIN_OPENING:
                people[dataset.identity_index(index)].append((opening, index, frame))
    return people


def _frame(dataset: EpisodeDataset, index: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) uint8 frame and its (478, 2) points in the frame's pixels, at the dataset's size."""
    clip = dataset.clip(index)
    image, stored = dataset.frame_image(clip, frame)
    return image, dataset.scaled_points(clip.dense_landmarks[frame], stored).numpy()


@torch.no_grad()
def fill_mouth_bank(generator: nn.Module, dataset: EpisodeDataset, config: MouthGeneratorConfig) -> int:
    """Write the bank buffers of ``generator`` from ``dataset`` (frames at ``config.frame_size``); returns the entries.

    People are taken in the order of the split's identities until ``config.bank_size`` is full.
    """
    chosen: list[tuple[int, int, int]] = []  # (person, clip, frame)
    for person, frames in sorted(_open_frames(dataset).items()):
        frames.sort()
        picks = np.unique(np.linspace(0, len(frames) - 1, min(config.bank_per_identity, len(frames))).round().astype(int))
        chosen += [(person, frames[i][1], frames[i][2]) for i in picks.tolist()]
    chosen = chosen[:config.bank_size]
    generator.bank_identities.fill_(-1)
    device = generator.bank_images.device
    for start in range(0, len(chosen), 32):
        part = chosen[start:start + 32]
        loaded = [_frame(dataset, clip, frame) for _, clip, frame in part]
        images = image_to_tensor(np.stack([image for image, _ in loaded])).to(device)
        points = torch.from_numpy(np.stack([p for _, p in loaded])).to(device)
        crops = cut_mouth(images, points, config)
        rows = slice(start, start + len(part))
        generator.bank_images[rows] = ((crops.image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        generator.bank_rings[rows] = crops.ring
        generator.bank_identities[rows] = torch.tensor([person for person, _, _ in part], device=device)
    return len(chosen)


def prepare_bank(trainer, dataset: EpisodeDataset, config: MouthGeneratorConfig, name: str = "mouth_generator") -> None:
    """Fill the bank of the trainer's mouth generator (and its EMA copy) unless it already holds mouths.

    A resumed run's checkpoint brings its bank back, so a bank is filled once per run.
    """
    generator = unwrap(trainer.networks[name])
    if not generator.bank_entries.any():
        count = fill_mouth_bank(generator, dataset, config)
        people = len(torch.unique(generator.bank_identities[generator.bank_entries]))
        trainer.logger.info(f"mouth bank: {count} open mouths of {people} training people ({config.bank_size} slots)")
    ema = trainer.ema.get(name)
    if ema is not None:
        for buffer in ("bank_images", "bank_rings", "bank_identities"):
            getattr(ema.module, buffer).copy_(getattr(generator, buffer))
