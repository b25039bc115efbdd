"""talkinghead.utils.modules: the one parameter count every caller uses."""

from __future__ import annotations

from torch import nn

from talkinghead.utils.modules import parameter_counts


def test_parameter_counts_counts_parameters_not_buffers_by_name():
    networks = {"linear": nn.Linear(3, 2), "conv": nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))}
    # Linear: 3*2 weights + 2 biases; Conv2d: 4*1*3*3 + 4; BatchNorm2d: 4 + 4 (running stats are buffers)
    assert parameter_counts(networks) == {"linear": 8, "conv": 48}
    assert parameter_counts({}) == {}
