"""The LSR model: K-shot latents, a layout generator and a SPADE image generator (LSR §3.1).

The five networks are built from one :class:`LSRModelConfig`. The functions below take
the networks as arguments (they may be DDP- or compile-wrapped during training), so the
trainer and the inference model run the same equations:

    z^l = 1/K sum_i E_l(I_i ++ x_i),  z^s = 1/K sum_i E_s(I_i ++ x_i)        (LSR Eq. 1, 3)
    y^l, R_t = G_l(x_t, z^l)                                                   (LSR Eq. 1)
    I_hat = G_s(act(y^l) ++ x_t, z^s)                                          (LSR Eq. 3)

where ``++`` concatenates channels and ``x`` are rasterised landmark images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.lsr import GENERATOR_MODULES, MODULE_NAMES, SYNTHESIS_NETWORKS, LSRModelConfig
from talkinghead.errors import TalkingHeadError
from talkinghead.models.discriminator import StyleGAN2Discriminator
from talkinghead.models.encoder import LatentEncoder
from talkinghead.models.image_generator import SPADEImageGenerator
from talkinghead.models.inference_model import InferenceModel, StateTensor
from talkinghead.models.layout_generator import LayoutGenerator
from talkinghead.models.registry import MethodSpec, register_method
from talkinghead.utils.modules import unwrap

METHOD = "lsr"


class OracleSynthesisError(TalkingHeadError, ValueError):
    """The oracle-segmentation ablation was asked to render without a ground-truth segmentation."""


@dataclass
class LSROutput:
    """What one synthesis pass produces.

    Attributes:
        image: (b, 3, h, w) I_hat in [-1, 1], or None when only the layout was asked for.
        layout_logits: (b, C, h, w) G_l's raw output y^l (segmentation logits in pre-training),
            or None when G_l does not run (the ``landmarks`` and ``oracle`` ablations).
        layout: (b, C, h, w) what G_s receives (``layout_activation`` applied; the one-hot
            oracle segmentation in the ``oracle`` ablation), or None.
        rgb: (b, 3, h, w) G_l's extra reconstruction R_t, or None.
    """

    image: torch.Tensor | None
    layout_logits: torch.Tensor | None
    layout: torch.Tensor | None
    rgb: torch.Tensor | None


def activate_layout(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """What G_s receives from G_l's logits: a softmax over channels, or the logits."""
    if activation == "softmax":
        return F.softmax(logits.float(), dim=1).to(logits.dtype)
    if activation == "none":
        return logits
    raise ValueError(f"unknown layout activation {activation!r}; use 'softmax' or 'none'")


def encode_latent(encoder: nn.Module, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """K-shot latent of LSR Eq. 1 / LSR Eq. 3: the mean of the per-image encodings.

    Args:
        encoder: E_l or E_s.
        images: (b, k, 3, h, w) source frames in [-1, 1].
        landmarks: (b, k, c, h, w) their landmark images.

    Returns:
        (b, d) the averaged latent.
    """
    if images.ndim != 5 or landmarks.ndim != 5 or images.shape[:2] != landmarks.shape[:2]:
        raise ValueError(
            f"expected (b, k, c, h, w) images and landmarks, got {tuple(images.shape)} and {tuple(landmarks.shape)}"
        )
    b, k = images.shape[:2]
    x = torch.cat([images, landmarks], dim=2).flatten(0, 1)  # (b * k, 3 + c, h, w)
    return encoder(x).reshape(b, k, -1).mean(dim=1)  # (b, d)


def synthesize(
    layout_generator: nn.Module,
    image_generator: nn.Module | None,
    landmarks: torch.Tensor,
    z_layout: torch.Tensor,
    z_style: torch.Tensor | None,
    *,
    layout_activation: str,
    with_rgb: bool = False,
    synthesis: str = "layout",
    segmentation: torch.Tensor | None = None,
) -> LSROutput:
    """LSR Eq. 1-3 for target landmark images ``landmarks`` (b, c, h, w).

    With ``image_generator`` None (layout pre-training) only G_l runs. ``synthesis`` picks an
    ablation of LSR Table 2 (see :class:`LSRModelConfig`); ``oracle`` needs the target's
    (b, h, w) class ``segmentation``.
    """
    if synthesis == "adain_unet":  # baseline: G_l's AdaIN U-Net renders the image through its RGB head
        logits, rgb = layout_generator(landmarks, z_layout, with_rgb=True)
        return LSROutput(image=rgb, layout_logits=logits, layout=None, rgb=rgb)
    if synthesis in ("landmarks", "oracle"):
        if z_style is None or image_generator is None:
            raise ValueError(f"the {synthesis!r} ablation needs the image generator and a style latent")
        layout = None
        condition = landmarks
        if synthesis == "oracle":
            if segmentation is None:
                raise ValueError("the 'oracle' ablation needs the target's segmentation map (a dataset with maps)")
            channels = unwrap(image_generator).cond_channels - landmarks.shape[1]  # the classes
            layout = F.one_hot(segmentation.long(), channels).permute(0, 3, 1, 2).to(landmarks.dtype)
            condition = torch.cat([layout, landmarks], dim=1)
        return LSROutput(image=image_generator(condition, z_style), layout_logits=None, layout=layout, rgb=None)
    if synthesis != "layout":
        raise ValueError(f"unknown synthesis {synthesis!r}; use 'layout', 'landmarks', 'oracle' or 'adain_unet'")
    logits, rgb = layout_generator(landmarks, z_layout, with_rgb=with_rgb)
    layout = activate_layout(logits, layout_activation)
    image = None
    if image_generator is not None:
        if z_style is None:
            raise ValueError("the image generator needs a style latent")
        image = image_generator(torch.cat([layout, landmarks.to(layout.dtype)], dim=1), z_style)
    return LSROutput(image=image, layout_logits=logits, layout=layout, rgb=rgb)


def build_networks(config: LSRModelConfig) -> dict[str, nn.Module]:
    """The five LSR networks, by their config/checkpoint names."""
    size, lc, dim = config.image_size, config.landmark_channels, config.latent_dim
    d_in = 3 + (lc if config.discriminator.use_landmarks else 0)
    layout_in = 0 if config.synthesis == "landmarks" else config.layout_generator.layout_channels
    return {
        "layout_encoder": LatentEncoder(config.encoder, size, 3 + lc, dim),  # E_l
        "style_encoder": LatentEncoder(config.encoder, size, 3 + lc, dim),  # E_s
        "layout_generator": LayoutGenerator(config.layout_generator, size, lc, dim),  # G_l
        "image_generator": SPADEImageGenerator(config.image_generator, size, layout_in + lc, dim),  # G_s
        "discriminator": StyleGAN2Discriminator(config.discriminator, size, d_in),  # D
    }


class LSRModel(InferenceModel):
    """The LSR generator side for inference: encode a person once, then synthesise frames.

    Holds E_l, E_s, G_l and G_s (the discriminator only when ``with_discriminator``). The
    person state is the two K-shot latents ``z_layout`` (z^l) and ``z_style`` (z^s).

    Args:
        config: the architecture.
        with_discriminator: also build D (fine-tuning needs it, inference does not).
    """

    method = METHOD

    def __init__(self, config: LSRModelConfig, *, with_discriminator: bool = False):
        super().__init__(config)
        networks = build_networks(config)
        names = MODULE_NAMES if with_discriminator else GENERATOR_MODULES
        for name in names:
            self.add_module(name, networks[name])

    def synthesis_networks(self) -> list[str]:
        runs = SYNTHESIS_NETWORKS[self.config.synthesis]
        return [name for name in ("layout_generator", "image_generator") if name in runs]

    @classmethod
    def state_spec(cls, config: LSRModelConfig) -> dict[str, StateTensor]:
        dim = config.latent_dim
        return {
            "z_layout": StateTensor((dim,), "layout latent z^l: the mean of E_l over the K source frames (LSR Eq. 1)"),
            "z_style": StateTensor((dim,), "style latent z^s: the mean of E_s over the K source frames (LSR Eq. 3)"),
        }

    @torch.no_grad()
    def encode(self, source_images: torch.Tensor, source_landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """{z_layout, z_style}, each (b, latent_dim), from (b, k, ...) source frames and landmark images."""
        return {
            "z_layout": encode_latent(self.layout_encoder, source_images, source_landmarks),
            "z_style": encode_latent(self.style_encoder, source_images, source_landmarks),
        }

    def forward(self, landmarks: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(b, 3, h, w) frames for target landmark images ``landmarks`` (b, c, h, w), LSR Eq. 1-3."""
        if self.config.synthesis == "oracle":
            raise OracleSynthesisError(
                "this LSR model is the 'oracle' ablation (model.synthesis: oracle), which renders from the target's "
                "ground-truth segmentation and so cannot animate; compare it by its held-out training numbers, or use "
                "a model of another synthesis"
            )
        return synthesize(
            self.layout_generator,
            self.image_generator,
            landmarks,
            state["z_layout"],
            state["z_style"],
            layout_activation=self.config.layout_generator.layout_activation,
            synthesis=self.config.synthesis,
        ).image


register_method(
    MethodSpec(
        name=METHOD,
        label="LSR",
        model_config=LSRModelConfig,
        build_networks=build_networks,
        inference_model=LSRModel,
        inference_networks=tuple(GENERATOR_MODULES),
    )
)
