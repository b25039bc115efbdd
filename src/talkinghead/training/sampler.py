"""Resumable, rank-aware sampling of training items over many epochs.

An epoch is a seeded permutation of the dataset (repeated when the dataset holds fewer
items than one optimiser step needs). Global step ``s`` always consumes the same items,
whatever the number of restarts: the sampler is built for a starting step and yields
``(item index, epoch)`` pairs from there on, so a resumed run sees exactly the data order
of an uninterrupted one, and each item knows its epoch without shared state (the episode
dataset draws its frames from ``(seed, epoch, index)``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableEpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, epoch)`` for one rank, from a given optimiser step on.

    Every optimiser step uses ``global_batch = world_size * per_rank_batch`` items; an
    epoch is ``steps_per_epoch = max(1, num_items // global_batch)`` steps. Within a step,
    rank ``r`` takes items ``r, r + world_size, ...`` of the step's slice, so the ranks'
    items never overlap.

    Args:
        num_items: dataset length.
        per_rank_batch: items one rank uses per optimiser step (all micro-batches).
        world_size: number of processes.
        rank: this process.
        seed: seed of the permutations.
        start_step: first optimiser step to serve.
        total_steps: steps to serve in all (None: endless).
    """

    def __init__(
        self,
        num_items: int,
        *,
        per_rank_batch: int,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        start_step: int = 0,
        total_steps: int | None = None,
    ):
        if num_items < 1:
            raise ValueError("the dataset is empty")
        if per_rank_batch < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad sampler geometry: batch {per_rank_batch}, rank {rank} of {world_size}")
        self.num_items = num_items
        self.per_rank_batch = per_rank_batch
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.start_step = start_step
        self.total_steps = total_steps
        self.global_batch = per_rank_batch * world_size
        self.steps_per_epoch = max(1, num_items // self.global_batch)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """(steps_per_epoch * global_batch,) item indices of ``epoch``, in order."""
        needed = self.steps_per_epoch * self.global_batch
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        parts, count = [], 0
        while count < needed:  # small datasets: several permutations per epoch
            parts.append(torch.randperm(self.num_items, generator=generator))
            count += self.num_items
        return torch.cat(parts)[:needed]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.start_step
        cached_epoch, order = -1, None
        while self.total_steps is None or step < self.total_steps:
            epoch, within = divmod(step, self.steps_per_epoch)
            if epoch != cached_epoch:
                order, cached_epoch = self.epoch_order(epoch), epoch
            chunk = order[within * self.global_batch : (within + 1) * self.global_batch]
            for index in chunk[self.rank :: self.world_size].tolist():
                yield index, epoch
            step += 1

    def __len__(self) -> int:
        if self.total_steps is None:
            raise TypeError("an endless sampler has no length")
        return max(0, self.total_steps - self.start_step) * self.per_rank_batch
