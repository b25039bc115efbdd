"""Exponential moving average of weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from talkinghead.training.ema import ExponentialMovingAverage


class Wrapper(nn.Module):
    """Stands in for torch.compile's OptimizedModule (the network sits in ``_orig_mod``)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self._orig_mod = module

    def forward(self, x):
        return self._orig_mod(x)


def set_weights(net: nn.Linear, value: float) -> None:
    with torch.no_grad():
        net.weight.fill_(value)
        net.bias.fill_(value)


def test_decay_arithmetic():
    net = nn.Linear(2, 1)
    set_weights(net, 1.0)
    ema = ExponentialMovingAverage(net, decay=0.9)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert ema.module.weight.data_ptr() != net.weight.data_ptr()

    set_weights(net, 2.0)
    ema.update(net)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.9 * 1.0 + 0.1 * 2.0))
    set_weights(net, 0.0)
    ema.update(net)
    assert torch.allclose(ema.module.bias, torch.tensor([0.9 * 1.1]))


def test_copies_before_start_step_and_copies_buffers():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ExponentialMovingAverage(net, decay=0.99, start_step=10)
    with torch.no_grad():
        net[0].weight.fill_(3.0)
    net.train()(torch.randn(8, 2))  # moves the BatchNorm running statistics
    ema.update(net, step=5)
    assert torch.equal(ema.module[0].weight, net[0].weight)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)
    with torch.no_grad():
        net[0].weight.fill_(4.0)
    ema.update(net, step=10)
    assert torch.allclose(ema.module[0].weight, torch.full((2, 2), 0.99 * 3.0 + 0.01 * 4.0))


def test_unwraps_compile_and_ddp_style_wrappers():
    net = nn.Linear(2, 1)
    set_weights(net, 1.0)
    ema = ExponentialMovingAverage(Wrapper(net), decay=0.5)
    assert set(ema.module.state_dict()) == {"weight", "bias"}
    set_weights(net, 3.0)
    ema.update(torch.nn.DataParallel(net))  # DDP and DataParallel keep the net in .module
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 2.0))
    ema.update(Wrapper(net))
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 2.5))


def test_state_dict_round_trip():
    net = nn.Linear(2, 1)
    ema = ExponentialMovingAverage(net, decay=0.9, start_step=3)
    set_weights(net, 5.0)
    ema.update(net)
    other = ExponentialMovingAverage(nn.Linear(2, 1), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and other.start_step == 3 and other.num_updates == 1
    assert torch.equal(other.module.weight, ema.module.weight)
    other.load_state_dict(net.state_dict())  # a plain network state dict works too
    assert torch.equal(other.module.weight, net.weight)


def test_rejects_bad_decay_and_mismatched_networks():
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(nn.Linear(2, 1), decay=1.0)
    ema = ExponentialMovingAverage(nn.Linear(2, 1), decay=0.9)
    with pytest.raises(ValueError, match="differ"):
        ema.update(nn.Sequential(nn.Linear(2, 1)))
