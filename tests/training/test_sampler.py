"""The resumable sampler: same items per step whatever the restarts, disjoint ranks."""

from __future__ import annotations

import pytest

from talkinghead.training.sampler import ResumableEpochSampler


def _steps(sampler: ResumableEpochSampler, per_step: int) -> list[list[tuple[int, int]]]:
    items = list(sampler)
    return [items[i : i + per_step] for i in range(0, len(items), per_step)]


def test_starting_at_a_step_continues_the_uninterrupted_order():
    whole = _steps(ResumableEpochSampler(10, per_rank_batch=3, seed=4, total_steps=9), 3)
    resumed = _steps(ResumableEpochSampler(10, per_rank_batch=3, seed=4, start_step=5, total_steps=9), 3)
    assert resumed == whole[5:]
    assert len(ResumableEpochSampler(10, per_rank_batch=3, start_step=5, total_steps=9)) == 12


def test_epochs_are_permutations_and_carry_their_epoch():
    sampler = ResumableEpochSampler(8, per_rank_batch=4, seed=0, total_steps=6)
    steps = _steps(sampler, 4)
    assert sampler.steps_per_epoch == 2
    for epoch in range(3):
        items = steps[2 * epoch] + steps[2 * epoch + 1]
        assert sorted(i for i, _ in items) == list(range(8))
        assert {e for _, e in items} == {epoch}
    assert steps[0] != steps[2]  # a new permutation each epoch


def test_ranks_take_disjoint_items_of_each_step():
    ranks = [
        _steps(ResumableEpochSampler(12, per_rank_batch=2, world_size=3, rank=r, seed=1, total_steps=4), 2)
        for r in range(3)
    ]
    for step in range(4):
        items = [i for r in range(3) for i, _ in ranks[r][step]]
        assert len(set(items)) == 6


def test_small_datasets_repeat_within_a_step():
    steps = _steps(ResumableEpochSampler(3, per_rank_batch=4, total_steps=2), 4)
    assert len(steps) == 2 and all(len(s) == 4 for s in steps)


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="empty"):
        ResumableEpochSampler(0, per_rank_batch=1)
    with pytest.raises(ValueError, match="rank 2 of 2"):
        ResumableEpochSampler(4, per_rank_batch=1, world_size=2, rank=2)
