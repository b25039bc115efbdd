"""The phases of FSTH's training step: G (E and G, FSTH Eq. 3) and ``d_steps`` D updates (FSTH Eq. 6).

Shared by meta-learning (K-shot episodes of training video i; D scores with W_i + w0) and
fine-tuning (§3.3: the person-specific psi' and w' are free parameters held by the
``subject_adain`` and ``subject_realism`` modules; D scores with w').
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from talkinghead.config.fsth import GENERATOR_MODULES, SUBJECT_MODULES
from talkinghead.data.holdout import l1, psnr
from talkinghead.models.fsth_embedder import embed_frames
from talkinghead.training.fsth_objective import FSTHObjective
from talkinghead.training.trainer import Phase, Trainer
from talkinghead.utils.modules import unwrap


@dataclass
class Generated:
    """One generator pass.

    Attributes:
        image: (b, 3, s, s) x_hat.
        per_frame: (b, k, N) the per-frame embeddings (None in fine-tuning).
    """

    image: torch.Tensor
    per_frame: torch.Tensor | None


class FSTHPhases:
    """G and D phases of one FSTH stage (or of fine-tuning, ``subject=True``).

    Args:
        objective: the loss terms and weights.
        modules: networks that train (among embedder, generator, discriminator and, in
            fine-tuning, the subject parameters).
        d_steps: discriminator updates per step.
        subject: fine-tuning mode (psi' and w' from the subject modules).
    """

    def __init__(self, objective: FSTHObjective, modules, d_steps: int, *, subject: bool = False):
        self.objective = objective
        self.subject = subject
        self.d_steps = d_steps
        weights = objective.weights
        self.adversarial = "discriminator" in modules and (weights.gan > 0 or weights.feature_matching > 0)
        self.generators = [m for m in modules if m in GENERATOR_MODULES]
        self.d_modules = ["discriminator"]
        if subject:
            self.generators.append(SUBJECT_MODULES[0])
            self.d_modules.append(SUBJECT_MODULES[1])
        self.trained = self.generators + (self.d_modules if self.adversarial else [])
        self._cache: dict[int, Generated] = {}  # the G phase's output, reused by the same step's D phases

    def generate(self, nets: Mapping[str, nn.Module], batch) -> Generated:
        """x_hat for the batch's target landmarks: from the K sources (FSTH Eq. 1-2) or from psi'."""
        landmarks = batch["target_landmarks"]
        if self.subject:
            adain = nets[SUBJECT_MODULES[0]]()[None].expand(len(landmarks), -1)
            return Generated(nets["generator"](landmarks, adain), None)
        per_frame, embedding = embed_frames(nets["embedder"], batch["source_images"], batch["source_landmarks"])
        adain = unwrap(nets["generator"]).project(embedding)  # psi_hat = P e_hat
        return Generated(nets["generator"](landmarks, adain), per_frame)

    def score(self, nets, image: torch.Tensor, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """D's realism score (b,) and block activations for a frame with the target landmark image."""
        x = torch.cat([image, batch["target_landmarks"].to(image.dtype)], 1)
        if self.subject:
            return nets["discriminator"](x, realism=nets[SUBJECT_MODULES[1]]())
        return nets["discriminator"](x, video_index=batch["clip_index"])

    def video_embedding(self, nets, batch) -> torch.Tensor | None:
        """W_i of the batch's training videos (b, N), or None in fine-tuning."""
        if self.subject:
            return None
        return unwrap(nets["discriminator"]).video_embeddings[batch["clip_index"]]

    def g_loss(self, batch, nets):
        out = self.generate(nets, batch)
        fake_score = fake_feats = real_feats = None
        if self.adversarial:
            fake_score, fake_feats = self.score(nets, out.image, batch)
            with torch.no_grad():
                _, real_feats = self.score(nets, batch["target_image"], batch)
            self._cache[id(batch)] = Generated(out.image.detach(), None if out.per_frame is None else out.per_frame.detach())
        return self.objective.generator(out.image, batch["target_image"], fake_score, fake_feats, real_feats,
                                        out.per_frame, self.video_embedding(nets, batch))

    def d_loss(self, batch, nets, last: bool):
        cached = self._cache.pop(id(batch), None) if last else self._cache.get(id(batch))
        if cached is None:
            with torch.no_grad():
                out = self.generate(nets, batch)
            cached = Generated(out.image, out.per_frame)
        real_score, _ = self.score(nets, batch["target_image"], batch)
        fake_score, _ = self.score(nets, cached.image, batch)
        return self.objective.discriminator(real_score, fake_score, cached.per_frame, self.video_embedding(nets, batch))

    def phases(self) -> list[Phase]:
        phases = [Phase("G", "generator", self.generators, self.g_loss)]
        if self.adversarial:
            for i in range(self.d_steps):
                last = i == self.d_steps - 1
                name = "D" if i == 0 else f"D{i + 1}"
                phases.append(Phase(name, "discriminator", self.d_modules,
                                    lambda batch, nets, last=last: self.d_loss(batch, nets, last)))
        return phases

    def optimizers(self, trainer: Trainer, lr: float, betas: tuple[float, float],
                   d_lr_ratio: float) -> dict[str, torch.optim.Optimizer]:
        """Adam for E and G (and psi') at ``lr``; for D (and w') at ``d_lr_ratio`` x lr (§3.4: 5e-5 and 2e-4)."""
        g_params = [p for name in self.generators for p in trainer.networks[name].parameters()]
        out = {"generator": torch.optim.Adam([{"params": g_params, "lr_mul": 1.0}], lr=lr, betas=betas)}
        if self.adversarial:
            d_params = [p for name in self.d_modules for p in trainer.networks[name].parameters()]
            out["discriminator"] = torch.optim.Adam(
                [{"params": d_params, "lr_mul": d_lr_ratio, "lr": lr * d_lr_ratio}], lr=lr, betas=betas
            )
        return out

    def sample(self, nets, batch):
        """Rows of the sample grid: first source, target landmarks, output, target."""
        out = self.generate(nets, batch)
        first = batch["source_images"][:, 0] if "source_images" in batch else batch["target_image"]
        return [first, batch["target_landmarks"], out.image, batch["target_image"]]

    def measure(self, nets, batch):
        """Held-out L1 / PSNR of the output."""
        image = self.generate(nets, batch).image
        return {"l1": l1(image, batch["target_image"]), "psnr": psnr(image, batch["target_image"])}
