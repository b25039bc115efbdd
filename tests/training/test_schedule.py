"""Learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from talkinghead.training.schedule import lr_factor, set_lr


def factors(total: int, **kwargs) -> list[float]:
    return [lr_factor(step, total, **kwargs) for step in range(total)]


def test_warmup_constant_decay():
    values = factors(100, warmup_steps=10, decay_steps=20, decay_factor=0.01)
    assert values[0] == pytest.approx(0.1)  # 1 / warmup_steps: close to 0, never exactly 0
    assert values[9] == 1.0
    assert all(v == 1.0 for v in values[9:80])
    assert values[80] < 1.0
    assert values[-1] == 0.01  # exactly the decay factor at the final step
    decay = values[79:]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    warmup = values[:10]
    assert all(a < b for a, b in zip(warmup, warmup[1:]))
    assert lr_factor(150, 100, warmup_steps=10, decay_steps=20, decay_factor=0.01) == 0.01


def test_final_factor_is_exact_for_awkward_values():
    for total, decay_steps, decay_factor in [(7, 3, 0.1), (1000, 333, 0.01), (5, 5, 0.3)]:
        last = lr_factor(total - 1, total, warmup_steps=0, decay_steps=decay_steps, decay_factor=decay_factor)
        assert last == decay_factor


def test_no_warmup_no_decay_and_overlap():
    assert factors(5, warmup_steps=0, decay_steps=0, decay_factor=0.01) == [1.0] * 5
    short = factors(4, warmup_steps=4, decay_steps=4, decay_factor=0.5)
    assert short[-1] == 0.5 and max(short) <= 1.0
    with pytest.raises(ValueError):
        lr_factor(0, 0, warmup_steps=0, decay_steps=0, decay_factor=0.1)


def test_set_lr_respects_lr_mul():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr_mul": 0.01}], lr=1.0)
    set_lr(optimizer, 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.005]
