"""build_norm: every kind by name, one call signature, actionable errors."""

from __future__ import annotations

import pytest
import torch

from talkinghead.layers import SPADE, AdaIN, InstanceNorm, NoNorm, build_norm


@pytest.mark.parametrize(
    ("name", "kwargs", "cls", "cond"),
    [
        ("instance", {}, InstanceNorm, None),
        ("instance", {"affine": True}, InstanceNorm, None),
        ("adain", {"latent_dim": 6}, AdaIN, torch.randn(2, 6)),
        ("spade", {"cond_channels": 3, "hidden_channels": 8}, SPADE, torch.randn(2, 3, 16, 16)),
        ("none", {}, NoNorm, None),
    ],
)
def test_builds_each_kind_with_one_signature(name, kwargs, cls, cond):
    norm = build_norm(name, 5, **kwargs)
    assert isinstance(norm, cls)
    x = torch.randn(2, 5, 8, 8)
    assert norm(x, cond=cond).shape == x.shape
    assert norm.conditional == (cond is not None)


def test_instance_and_none():
    x = torch.randn(2, 5, 8, 8)
    torch.testing.assert_close(build_norm("instance", 5)(x), torch.nn.functional.instance_norm(x))
    assert build_norm("none", 5)(x) is x
    assert len(list(build_norm("instance", 5, affine=True).parameters())) == 2


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown norm 'batch'.*'adain'.*'instance'.*'none'.*'spade'"):
        build_norm("batch", 4)


def test_wrong_arguments_say_what_the_norm_takes():
    with pytest.raises(ValueError, match=r"norm 'adain'.*latent_dim"):
        build_norm("adain", 4)
    with pytest.raises(ValueError, match=r"norm 'instance'.*affine"):
        build_norm("instance", 4, latent_dim=3)
