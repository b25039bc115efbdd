"""Layout cross-entropy and the latent L2 term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from talkinghead.losses import latent_l2, segmentation_loss


def test_matches_cross_entropy_at_the_same_size():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 8, 8)
    target = torch.randint(0, 5, (2, 8, 8))
    torch.testing.assert_close(segmentation_loss(logits, target), F.cross_entropy(logits, target))


def test_larger_target_is_resized_with_nearest_sampling():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randint(0, 4, (2, 16, 16))
    loss = segmentation_loss(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target[:, ::2, ::2]))
    loss.backward()
    assert logits.grad is not None


def test_smaller_target_is_upsampled_without_new_labels():
    logits = torch.zeros(1, 3, 4, 4)
    target = torch.tensor([[[0, 2], [1, 2]]])
    expected = target.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    torch.testing.assert_close(segmentation_loss(logits, target), F.cross_entropy(logits, expected))


def test_ignore_index_and_bad_shapes():
    logits = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, -100], [1, 2]]])
    torch.testing.assert_close(segmentation_loss(logits, target), F.cross_entropy(logits, target))
    with pytest.raises(ValueError, match="target"):
        segmentation_loss(logits, target[0])


def test_latent_l2_is_the_batch_mean_of_squared_norms_per_entry():
    z = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert float(latent_l2(z)) == pytest.approx((25.0 + 1.0) / 2 / z.shape[1])
    assert float(latent_l2(torch.ones(3, 2, 2, 2))) == pytest.approx(1.0)
