"""FSTH, the few-shot adversarial talking-head model (FSTH §3): embedder, AdaIN generator, projection D.

The networks are built from one :class:`FSTHModelConfig`. The inference model runs:

    e_hat = 1/K sum_k E(x(s_k) ++ y(s_k))        (FSTH Eq. 1)   encode, once per person
    psi_hat = P e_hat                                           encode, once per person
    x_hat = G(y(t); psi, psi_hat)                (FSTH Eq. 2)   forward, every frame

so the person state is (e_hat, psi_hat). After fine-tuning (§3.3) the state holds the tuned
psi' in place of P e_NEW (the release's ``subject.safetensors``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from talkinghead.config.fsth import GENERATOR_MODULES, FSTHModelConfig
from talkinghead.models.fsth_embedder import ResidualEmbedder, embed_frames
from talkinghead.models.fsth_generator import FSTHGenerator
from talkinghead.models.inference_model import InferenceModel, StateTensor
from talkinghead.models.projection_discriminator import ProjectionDiscriminator
from talkinghead.models.registry import MethodSpec, register_method

METHOD = "fsth"


def build_networks(config: FSTHModelConfig) -> dict[str, nn.Module]:
    """The three FSTH networks, by their config/checkpoint names."""
    in_channels = 3 + config.landmark_channels
    return {
        "embedder": ResidualEmbedder(config.embedder, in_channels),  # E
        "generator": FSTHGenerator(config.generator, config.landmark_channels, config.embedding_dim),  # G (with P)
        "discriminator": ProjectionDiscriminator(config.embedder, config.discriminator, in_channels),  # D
    }


def adain_dim(config: FSTHModelConfig) -> int:
    """Size of psi_hat (every AdaIN scale and bias of G), without building G's convolutions."""
    g = config.generator
    down_last = min(g.base_channels * 2 ** (g.num_down_blocks - 1), g.max_channels)
    widths = []
    previous = down_last
    for _ in range(g.num_bottleneck_blocks):
        widths += [previous, g.max_channels]
        previous = g.max_channels
    down = [min(g.base_channels * 2**i, g.max_channels) for i in range(g.num_down_blocks)]
    for width in [down[g.num_down_blocks - 2 - j] for j in range(g.num_down_blocks - 1)] + [g.base_channels]:
        widths += [previous, width]
        previous = width
    widths.append(previous)
    return 2 * sum(widths)


class SubjectParameter(nn.Module):
    """One free person-specific vector of fine-tuning (§3.3): psi' of G or w' of D.

    Args:
        initial: (n,) its starting value (P e_NEW, or w0 + e_NEW).
    """

    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.value = nn.Parameter(initial.detach().clone())

    def forward(self) -> torch.Tensor:
        """(n,) the current value."""
        return self.value


class FSTHModel(InferenceModel):
    """FSTH's generator side for inference: encode a person once (e_hat, psi_hat), then render frames.

    Holds E and G (with P).

    Args:
        config: the architecture.
    """

    method = METHOD

    def __init__(self, config: FSTHModelConfig):
        super().__init__(config)
        networks = build_networks(config)
        for name in GENERATOR_MODULES:
            self.add_module(name, networks[name])

    def synthesis_networks(self) -> list[str]:
        return ["generator"]

    @classmethod
    def state_spec(cls, config: FSTHModelConfig) -> dict[str, StateTensor]:
        return {
            "embedding": StateTensor((config.embedding_dim,), "e_hat: the mean embedding of the K source frames (FSTH Eq. 1)"),
            "adain": StateTensor((adain_dim(config),), "psi_hat = P e_hat, G's AdaIN parameters (psi' after fine-tuning)"),
        }

    @torch.no_grad()
    def encode(self, source_images: torch.Tensor, source_landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """{embedding (b, N), adain (b, adain_dim)} from (b, k, ...) source frames and landmark images."""
        _, embedding = embed_frames(self.embedder, source_images, source_landmarks)
        return {"embedding": embedding, "adain": self.generator.project(embedding)}

    def forward(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, s, s) frames for landmark images (b, c, s, s) and a batched person state (FSTH Eq. 2)."""
        return self.generator(landmarks, state["adain"])


register_method(
    MethodSpec(
        name=METHOD,
        label="FSTH",
        model_config=FSTHModelConfig,
        build_networks=build_networks,
        inference_model=FSTHModel,
        inference_networks=tuple(GENERATOR_MODULES),
    )
)
