"""Identity loss: cosine distance of VGG-Face descriptors."""

from __future__ import annotations

import pytest
import torch

from talkinghead.losses import IdentityLoss


def faces(seed: int, size: int = 64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=generator) * 2 - 1  # (b, 3, h, w) in [-1, 1]


def test_zero_for_identical_faces_and_batch_mean(vggface_full):
    loss = IdentityLoss(vggface_full)
    output = faces(1)
    target = torch.cat([output[:1], faces(2)[1:]])  # sample 0 identical, sample 1 another face
    with torch.no_grad():
        value = loss(output, target)
        other = loss(output[1:], target[1:])
    assert 0.0 < float(other) <= 2.0
    # The identical pair contributes 0 to the batch mean.
    torch.testing.assert_close(value, other / 2, atol=1e-5, rtol=1e-4)


def test_gradient_reaches_the_output_only(vggface_full):
    output = faces(3)[:1].requires_grad_(True)
    target = faces(4)[:1].requires_grad_(True)
    IdentityLoss(vggface_full)(output, target).backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None for p in vggface_full.parameters())


def test_needs_the_fc_layers(vggface_conv):
    with pytest.raises(ValueError, match="with_fc=True"):
        IdentityLoss(vggface_conv)
