"""Fixtures of the loss tests: small random frozen networks and cheap fake weight files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from talkinghead.models.vgg import VGG19Features, VGGFace
from talkinghead.weights import asset_path

# Tensors of the official files that the networks leave out (the VGG19 classifier) or that
# are too large to write in the default run (VGG-Face's fc layers): name -> shape.
EXTRA_SHAPES = {
    "vgg19": {
        "classifier.0.weight": (4096, 25088),
        "classifier.0.bias": (4096,),
        "classifier.3.weight": (4096, 4096),
        "classifier.3.bias": (4096,),
        "classifier.6.weight": (1000, 4096),
        "classifier.6.bias": (1000,),
    },
    "vggface": {},
}


def fake_state(name: str) -> dict[str, torch.Tensor]:
    """Every key of the official file of asset ``name`` with its real shape, a few bytes on disk.

    Each tensor is one value expanded (stride 0), so loading exercises the strict key and
    shape checks without writing hundreds of megabytes.
    """
    with torch.device("meta"):
        network = VGG19Features() if name == "vgg19" else VGGFace(with_fc=True)
    shapes = {k: tuple(v.shape) for k, v in network.state_dict().items()} | EXTRA_SHAPES[name]
    return {key: torch.full((), 0.01).expand(shape) for key, shape in shapes.items()}


@pytest.fixture
def install_fake():
    """``install_fake(name, state=None)`` writes a weights file where the registry looks for it."""

    def install(name: str, state: dict[str, torch.Tensor] | None = None) -> Path:
        target = asset_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(fake_state(name) if state is None else state, target)
        return target

    return install


@pytest.fixture(scope="session")
def vgg19() -> VGG19Features:
    """Randomly initialised frozen VGG19 features (seeded)."""
    torch.manual_seed(0)
    return VGG19Features()


@pytest.fixture(scope="session")
def vggface_conv() -> VGGFace:
    """Randomly initialised frozen VGG-Face, conv part only (seeded)."""
    torch.manual_seed(1)
    return VGGFace(with_fc=False)


@pytest.fixture(scope="session")
def vggface_full() -> VGGFace:
    """Randomly initialised frozen VGG-Face with its fc layers (580 MB in memory, seeded)."""
    torch.manual_seed(2)
    return VGGFace(with_fc=True)
