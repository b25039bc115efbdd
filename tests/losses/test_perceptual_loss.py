"""Perceptual loss on frozen VGG19 / VGG-Face features."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from talkinghead.losses import PerceptualLoss
from talkinghead.losses.perceptual import VGG19_LAYER_WEIGHTS, VGG19_LAYERS, VGGFACE_LAYERS


def images(seed: int, size: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=generator) * 2 - 1  # (b, 3, h, w) in [-1, 1]


@pytest.fixture(params=["vgg19", "vggface"])
def network(request):
    return request.getfixturevalue("vgg19" if request.param == "vgg19" else "vggface_conv")


def test_zero_for_identical_images_positive_otherwise(network):
    loss = PerceptualLoss(network)
    x = images(0)
    assert float(loss(x, x.clone())) == 0.0
    assert float(loss(x, images(1))) > 0.0


def test_gradient_reaches_the_input_and_not_the_network(network):
    loss = PerceptualLoss(network)
    output = images(0).requires_grad_(True)
    target = images(1).requires_grad_(True)
    loss(output, target).backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert target.grad is None  # the target is a constant
    assert all(p.grad is None and not p.requires_grad for p in network.parameters())


def test_value_is_the_weighted_sum_of_layer_l1_distances(vgg19):
    loss = PerceptualLoss(vgg19)
    assert loss.layers == VGG19_LAYERS and loss.layer_weights == VGG19_LAYER_WEIGHTS
    a, b = images(2), images(3)
    fa = vgg19(vgg19.preprocess(a), VGG19_LAYERS)
    fb = vgg19(vgg19.preprocess(b), VGG19_LAYERS)
    expected = sum(w * F.l1_loss(fa[n], fb[n]) for n, w in zip(VGG19_LAYERS, VGG19_LAYER_WEIGHTS))
    torch.testing.assert_close(loss(a, b), expected)


def test_default_and_custom_layers(vgg19, vggface_conv):
    face = PerceptualLoss(vggface_conv)
    assert face.layers == VGGFACE_LAYERS and face.layer_weights == (1.0,) * 5
    custom = PerceptualLoss(vgg19, layers=["relu2_1", "relu3_1"])
    assert custom.layer_weights == (1.0, 1.0)
    weighted = PerceptualLoss(vgg19, layers=["relu2_1"], layer_weights=[2.0])
    a, b = images(4), images(5)
    torch.testing.assert_close(weighted(a, b), 2.0 * PerceptualLoss(vgg19, layers=["relu2_1"])(a, b))
    with pytest.raises(ValueError, match="layer weights"):
        PerceptualLoss(vgg19, layers=["relu1_1"], layer_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="relu6_1"):
        PerceptualLoss(vgg19, layers=["relu6_1"])
    with pytest.raises(ValueError, match="same shape"):
        custom(images(0, 16), images(0, 32))


def test_works_under_bf16_autocast(vgg19):
    loss = PerceptualLoss(vgg19)
    output = images(6)[:1].requires_grad_(True)  # bf16 convolutions are slow on CPU: one image
    target = images(7)[:1]
    reference = loss(output, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(output, target)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert float(value.detach()) == pytest.approx(float(reference.detach()), rel=0.05)
    value.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all()
    # bf16 images (not autocast) are cast to the network's fp32 weights.
    torch.testing.assert_close(loss(output.bfloat16(), target.bfloat16()), reference, rtol=0.05, atol=1e-3)
