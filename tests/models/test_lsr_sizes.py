"""The LSR networks at the paper's size (224 px, the defaults of config/lsr.py, A.1).

Shapes are checked on the meta device (no memory, no compute); E and D also run once for
real to check the 7x7 final map. Run with ``-s`` to see the parameter counts.
"""

from __future__ import annotations

import torch

from talkinghead.config.lsr import LSRModelConfig
from talkinghead.models.encoder import LatentEncoder
from talkinghead.models.layout_generator import LayoutGenerator
from talkinghead.models.image_generator import SPADEImageGenerator
from talkinghead.models.discriminator import StyleGAN2Discriminator

# Expected parameter counts (millions) at the defaults; wide enough for small changes.
PLAUSIBLE_MILLIONS = {
    "encoder": (15, 30),
    "layout_generator": (15, 35),
    "image_generator": (30, 60),
    "discriminator": (15, 35),
}


def build_paper_networks(config: LSRModelConfig) -> dict[str, torch.nn.Module]:
    """E, G_l, G_s and D as the trainer builds them from ``config``."""
    size, landmarks, latent = config.image_size, config.landmark_channels, config.latent_dim
    layout = config.layout_generator.layout_channels
    return {
        "encoder": LatentEncoder(config.encoder, size, 3 + landmarks, latent),
        "layout_generator": LayoutGenerator(config.layout_generator, size, landmarks, latent),
        "image_generator": SPADEImageGenerator(config.image_generator, size, layout + landmarks, latent),
        "discriminator": StyleGAN2Discriminator(config.discriminator, size),
    }


def capture_fc_input(module: torch.nn.Module) -> list[tuple[int, ...]]:
    """Record the shapes that reach ``module.fc`` (the flattened final map)."""
    shapes: list[tuple[int, ...]] = []
    module.fc.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape)))
    return shapes


def test_paper_size_networks():
    config = LSRModelConfig()
    assert (config.image_size, config.landmark_channels, config.latent_dim) == (224, 3, 512)
    with torch.device("meta"):
        nets = build_paper_networks(config)
        landmarks = torch.empty(2, 3, 224, 224)
        z = torch.empty(2, 512)
        assert nets["encoder"](torch.empty(2, 6, 224, 224)).shape == (2, 512)
        layout, rgb = nets["layout_generator"](landmarks, z, with_rgb=True)
        assert layout.shape == (2, 19, 224, 224) and rgb.shape == (2, 3, 224, 224)
        image = nets["image_generator"](torch.empty(2, 22, 224, 224), z)
        assert image.shape == (2, 3, 224, 224)
        assert nets["discriminator"](image).shape == (2,)
    for name, net in nets.items():
        millions = sum(p.numel() for p in net.parameters()) / 1e6
        print(f"{name}: {millions:.2f} M parameters")
        low, high = PLAUSIBLE_MILLIONS[name]
        assert low < millions < high, f"{name}: {millions:.2f} M parameters"
    assert nets["image_generator"].start_size == 7

    # E and D for real: both end on a 512 x 7 x 7 map
    torch.manual_seed(0)
    encoder = LatentEncoder(config.encoder, 224, 6, 512)
    discriminator = StyleGAN2Discriminator(config.discriminator, 224)
    encoder_maps, discriminator_maps = capture_fc_input(encoder), capture_fc_input(discriminator)
    with torch.no_grad():
        z = encoder(torch.randn(1, 6, 224, 224))
        logits = discriminator(torch.rand(2, 3, 224, 224) * 2 - 1)
    assert encoder_maps == [(1, 512 * 7 * 7)] and encoder.final_size == 7
    assert discriminator_maps == [(2, 512 * 7 * 7)] and discriminator.final_size == 7
    assert torch.isfinite(z).all() and torch.isfinite(logits).all()
