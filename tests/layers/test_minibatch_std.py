"""Minibatch standard deviation: group sizes, any batch size, the statistic itself."""

from __future__ import annotations

import pytest
import torch

from talkinghead.layers import MinibatchStdDev, minibatch_group_size


@pytest.mark.parametrize(("batch", "group", "expected"), [(8, 4, 4), (2, 4, 2), (1, 4, 1), (6, 4, 3), (5, 4, 1)])
def test_group_size_divides_batch(batch, group, expected):
    assert minibatch_group_size(batch, group) == expected


@pytest.mark.parametrize("batch", [1, 2, 5, 6, 8])
def test_appends_one_channel_for_any_batch(batch):
    out = MinibatchStdDev(group_size=4)(torch.randn(batch, 6, 4, 4))
    assert out.shape == (batch, 7, 4, 4)
    assert torch.isfinite(out).all()


def test_statistic_is_the_group_std():
    x = torch.randn(4, 3, 2, 2)
    out = MinibatchStdDev(group_size=2)(x)
    # groups of 2 pair sample n with n + 2
    for n in range(4):
        pair = x[[n % 2, n % 2 + 2]]
        expected = (pair.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[n, 3], expected.expand(2, 2))
    identical = MinibatchStdDev(group_size=4)(x[:1].expand(4, -1, -1, -1))
    assert identical[:, 3].max() < 1e-3
