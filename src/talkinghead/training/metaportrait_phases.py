"""The phases of MetaPortrait's objective (MetaPortrait Eq. 4), shared by both training stages and subject fine-tuning."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from talkinghead.config.landmark_styles import DRAWING
from talkinghead.config.metaportrait import GENERATOR_MODULES, WARP_MODULES, MetaPortraitModelConfig
from talkinghead.data.holdout import l1, psnr
from talkinghead.models.metaportrait import WarpOutput, identity_code, predict_warp, refine, select_source
from talkinghead.training.metaportrait_objective import MetaPortraitObjective
from talkinghead.training.trainer import Phase, Trainer


class MetaPortraitPhases:
    """G and D phases of one MetaPortrait stage.

    Args:
        objective: the loss terms and weights.
        model: the architecture config.
        modules: networks that train.
        with_refinement: run G_r (the full stage and fine-tuning); False in warp pre-training.
        id_network: dlib's face ResNet for z_id (needed with the refinement network).
    """

    def __init__(self, objective: MetaPortraitObjective, model: MetaPortraitModelConfig, modules,
                 with_refinement: bool, id_network: nn.Module | None):
        self.objective = objective
        self.model = model
        self.with_refinement = with_refinement
        self.id_network = id_network
        if with_refinement and id_network is None:
            raise ValueError("the refinement network needs z_id: pass dlib's face ResNet")
        weights = objective.weights
        self.generators = [m for m in modules if m in GENERATOR_MODULES]
        self.adversarial = (
            with_refinement and "discriminator" in modules and (weights.gan > 0 or weights.feature_matching > 0)
        )
        self.trained = self.generators + (["discriminator"] if self.adversarial else [])
        self._fakes: dict[int, torch.Tensor] = {}  # G phase output, reused by the same step's D phase

    def d_input(self, image: torch.Tensor, batch) -> torch.Tensor:
        if self.model.discriminator.use_landmarks:
            return torch.cat([image, batch["target_landmarks"].to(image.dtype)], 1)
        return image

    def sources(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(I_s, L_s, z_id): a precomputed person (fine-tuning) or the medoid of the K sources."""
        if "z_id" in batch:
            return batch["source_image"], batch["source_landmarks"], batch["z_id"]
        image, landmarks = select_source(batch["source_images"], batch["source_landmarks"])
        z_id = None
        if self.with_refinement:
            with torch.no_grad():
                z_id = identity_code(self.id_network, self.model, batch["source_images"])
        return image, landmarks, z_id

    def generate(self, nets: Mapping[str, nn.Module], batch) -> tuple[WarpOutput, torch.Tensor | None, torch.Tensor | None]:
        """(warp, I~_y or None, z_id or None) for the batch's driving landmark images."""
        image, landmarks, z_id = self.sources(batch)
        warped = predict_warp(nets["motion_encoder"], nets["flow_network"], image, landmarks, batch["target_landmarks"],
                              self.model.warp_size, self.model.mesh_prior)
        output = None
        if self.with_refinement:
            output = refine(nets["refinement_network"], None, warped, z_id.to(image.dtype), source_image=image)
        return warped, output, z_id

    def g_loss(self, batch, nets):
        warped, output, z_id = self.generate(nets, batch)
        fake = real = None
        if self.adversarial:
            fake = nets["discriminator"](self.d_input(output, batch))
            with torch.no_grad():
                real = nets["discriminator"](self.d_input(batch["target_image"], batch))
            self._fakes[id(batch)] = output.detach()
        return self.objective.generator(
            warped.warped, output, batch["target_image"], z_id, batch.get("target_points"), fake, real
        )

    def d_loss(self, batch, nets):
        fake = self._fakes.pop(id(batch), None)
        if fake is None:
            with torch.no_grad():
                fake = self.generate(nets, batch)[1]
        real_out = nets["discriminator"](self.d_input(batch["target_image"], batch))
        fake_out = nets["discriminator"](self.d_input(fake, batch))
        return self.objective.discriminator(real_out, fake_out)

    def phases(self) -> list[Phase]:
        phases = [Phase("G", "generator", self.generators, self.g_loss)]
        if self.adversarial:
            phases.append(Phase("D", "discriminator", ["discriminator"], self.d_loss))
        return phases

    def optimizers(self, trainer: Trainer, lr: float, betas: tuple[float, float],
                   warp_lr_ratio: float) -> dict[str, torch.optim.Optimizer]:
        """Adam for the generators (E_w, F_w at ``warp_lr_ratio`` x lr once G_r trains; official 0.1) and D."""
        groups = []
        for name in self.generators:
            ratio = warp_lr_ratio if (self.with_refinement and name in WARP_MODULES) else 1.0
            groups.append({"params": list(trainer.networks[name].parameters()), "lr_mul": ratio, "lr": lr * ratio})
        out = {"generator": torch.optim.Adam(groups, lr=lr, betas=betas)}
        if self.adversarial:
            d_params = [{"params": list(trainer.networks["discriminator"].parameters()), "lr_mul": 1.0}]
            out["discriminator"] = torch.optim.Adam(d_params, lr=lr, betas=betas)
        return out

    def sample(self, nets, batch):
        """Rows of the sample grid: source, driving landmarks, warped source, output, driving frame."""
        image, _, _ = self.sources(batch)
        warped, output, _ = self.generate(nets, batch)
        rows = [image, batch["target_landmarks"][:, DRAWING], warped.warped]
        if output is not None:
            rows.append(output)
        return rows + [batch["target_image"]]

    def measure(self, nets, batch):
        """Held-out numbers: L1 / PSNR of the output (of the warped source in warp pre-training)."""
        warped, output, _ = self.generate(nets, batch)
        image = output if output is not None else warped.warped
        return {"l1": l1(image, batch["target_image"]), "psnr": psnr(image, batch["target_image"])}
