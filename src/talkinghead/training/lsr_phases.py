"""The phases of LSR's objective (LSR Eq. 4), shared by the full training stage and subject fine-tuning."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from talkinghead.config.lsr import GENERATOR_MODULES, SYNTHESIS_NETWORKS
from talkinghead.models.lsr import encode_latent, synthesize
from talkinghead.training.image_grid import colorize_layout
from talkinghead.training.lsr_objective import LSRObjective
from talkinghead.training.stage_plumbing import adam, trainable_parameters
from talkinghead.training.trainer import Phase, Trainer


def _rgb_head(pname: str) -> bool:
    return pname.startswith("rgb_head")


def _layout_head(pname: str) -> bool:
    return pname.startswith("layout_head")


FROZEN = {"layout_generator": _rgb_head}  # R_t is a pre-training output only


def frozen_parameters(synthesis: str) -> dict:
    """Parameters that stay fixed in the full stage: R_t's head, or (AdaIN baseline) the unused layout head."""
    return {"layout_generator": _layout_head} if synthesis == "adain_unet" else FROZEN


def lsr_latents(nets: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor], synthesis: str = "layout"):
    """(z^l, z^s) of a batch: precomputed ones (subject fine-tuning) or the K-shot encodings.

    An ablation that does not run an encoder (``SYNTHESIS_NETWORKS``) gets None for its latent.
    """
    if "z_layout" in batch:
        return batch["z_layout"], batch["z_style"]
    runs = SYNTHESIS_NETWORKS[synthesis]
    return tuple(
        encode_latent(nets[name], batch["source_images"], batch["source_landmarks"]) if name in runs else None
        for name in ("layout_encoder", "style_encoder")
    )


class FullObjectivePhases:
    """The phases of LSR Eq. 4 (G, D, lazy R1), shared by the full stage and subject fine-tuning.

    Args:
        objective: the loss terms and their weights.
        model: the architecture config.
        modules: networks that train (generators among E_l, E_s, G_l, G_s; D).
        r1_gamma, r1_every: the R1 penalty.
    """

    def __init__(self, objective: LSRObjective, model, modules, r1_gamma: float, r1_every: int):
        self.objective = objective
        self.activation = model.layout_generator.layout_activation
        self.synthesis = model.synthesis
        self.use_landmarks_in_d = model.discriminator.use_landmarks
        self.r1_gamma, self.r1_every = r1_gamma, r1_every
        weights = objective.weights
        self.adversarial = weights.gan > 0 and "discriminator" in modules
        self.generators = [m for m in modules if m in GENERATOR_MODULES and m in SYNTHESIS_NETWORKS[self.synthesis]]
        self.trained = self.generators + (["discriminator"] if self.adversarial else [])
        self._fakes: dict[int, torch.Tensor] = {}  # G phase output, reused by the same step's D phase

    def d_input(self, image: torch.Tensor, batch) -> torch.Tensor:
        if self.use_landmarks_in_d:
            return torch.cat([image, batch["target_landmarks"].to(image.dtype)], 1)
        return image

    def generate(self, nets, batch):
        """LSR Eq. 1-3 for the batch's targets: (LSROutput, z^l, z^s)."""
        z_layout, z_style = lsr_latents(nets, batch, self.synthesis)
        out = synthesize(
            nets["layout_generator"], nets["image_generator"], batch["target_landmarks"], z_layout, z_style,
            layout_activation=self.activation, synthesis=self.synthesis, segmentation=batch.get("target_segmentation"),
        )
        return out, z_layout, z_style

    def g_loss(self, batch, nets):
        out, z_layout, z_style = self.generate(nets, batch)
        weights = self.objective.weights
        fake_logits = nets["discriminator"](self.d_input(out.image, batch)) if weights.gan > 0 else None
        if self.adversarial:
            self._fakes[id(batch)] = out.image.detach()
        return self.objective.generator(
            out.image, batch["target_image"], z_layout, z_style, fake_logits,
            out.layout_logits, batch.get("target_segmentation"), batch.get("target_points"),
        )

    def d_loss(self, batch, nets):
        fake = self._fakes.pop(id(batch), None)
        if fake is None:
            with torch.no_grad():
                fake = self.generate(nets, batch)[0].image
        real_logits = nets["discriminator"](self.d_input(batch["target_image"], batch))
        fake_logits = nets["discriminator"](self.d_input(fake, batch))
        return self.objective.discriminator(real_logits, fake_logits)

    def r1_loss(self, batch, nets):
        real = self.d_input(batch["target_image"], batch).detach().float().requires_grad_(True)
        with torch.autocast(device_type=real.device.type, enabled=False):
            logits = nets["discriminator"](real)
        return self.objective.r1(logits, real, self.r1_gamma, self.r1_every)

    def phases(self) -> list[Phase]:
        phases = [Phase("G", "generator", self.generators, self.g_loss)]
        if self.adversarial:
            phases += [
                Phase("D", "discriminator", ["discriminator"], self.d_loss),
                Phase("D_reg", "discriminator", ["discriminator"], self.r1_loss, every=self.r1_every),
            ]
        return phases

    def optimizers(self, trainer: Trainer, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        """Adam for the generators and (lazy-R1-adjusted) for D."""
        frozen = frozen_parameters(self.synthesis)
        out = {"generator": adam(trainable_parameters(trainer, self.generators, frozen), lr, betas)}
        if self.adversarial:
            ratio = self.r1_every / (self.r1_every + 1)
            out["discriminator"] = adam(trainable_parameters(trainer, ["discriminator"]), lr, betas, lr_ratio=ratio)
        return out

    def sample(self, nets, batch):
        out, _, _ = self.generate(nets, batch)
        layout = colorize_layout(out.layout) if out.layout is not None else batch["target_landmarks"]
        first_source = batch["source_images"][:, 0] if "source_images" in batch else batch["target_image"]
        return [first_source, batch["target_landmarks"], layout, out.image, batch["target_image"]]
