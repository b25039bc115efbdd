"""The phases of a mouth stage: the mouth generator learns to paint the opening of real mouths back (issue 24).

Shared by any method whose model holds a mouth generator (:mod:`talkinghead.models.mouth_generator`).
Each episode gives a target frame at the generator's ``frame_size`` with its dense
landmarks, and a source frame of the same clip (the reference mouth). What the generator
sees mimics what it gets at inference, where it paints over a face model's output:

* the target's mouth crop is softened (down- and up-sampled by a random factor of 1 to
  ``MAX_SOFTENING``), as a 128 px face network's lips are at 256 px, and its opening is blanked;
* the reference mouth is dropped (zeros) for ``REFERENCE_DROPOUT`` of the episodes, as when
  a saved person state has no photo to take it from;
* the retrieved interior (:mod:`talkinghead.models.mouth_bank`) is the nearest open mouth of
  another person of the bank (one drawn per episode), or, for ``OWN_MOUTH_SHARE`` of the
  episodes whose source frame shows the mouth open, the source's own mouth (as with K > 1
  photos at inference).

Both draws are fixed by the episode (:func:`episode_draws`), so a resumed run is bit-identical.

The loss compares ``lerp(real crop, G(x), P)`` with the real crop (P: the paint mask), so
only what is painted counts: L1 ("mouth") and the perceptual term on the crop, and LSGAN
with feature matching of a patch discriminator that reads the crop and its inner-lip mask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config.mouth import MouthGeneratorConfig
from talkinghead.data.holdout import l1, psnr
from talkinghead.losses.lsgan import feature_matching_loss, lsgan_d_loss, lsgan_g_loss
from talkinghead.models.mouth_generator import MouthCrop, cut_mouth, generator_inputs, mouth_opening, paint_mask, retrieve
from talkinghead.models.mouth_interior import OWN_MOUTH_OPEN
from talkinghead.utils.modules import unwrap
from talkinghead.training.trainer import Phase, Trainer

GENERATOR = "mouth_generator"
DISCRIMINATOR = "mouth_discriminator"
MAX_SOFTENING = 2.0
REFERENCE_DROPOUT = 0.25
OWN_MOUTH_SHARE = 0.3


def soften_crops(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """(b, 3, m, m) crops each down-sampled by its factor (b,) >= 1 and up-sampled back (bilinear)."""
    m = images.shape[-1]
    out = []
    for image, factor in zip(images, factors.tolist()):
        small = max(4, int(round(m / factor)))
        if small >= m:
            out.append(image)
            continue
        down = F.interpolate(image[None], size=(small, small), mode="bilinear", align_corners=False, antialias=True)
        out.append(F.interpolate(down, size=(m, m), mode="bilinear", align_corners=False)[0])
    return torch.stack(out)


def episode_draws(batch, count: int = 4) -> torch.Tensor:
    """(b, count) uniform numbers fixed by each episode's clip and frames, so a resumed run draws the same.

    The episodes themselves vary from epoch to epoch (:class:`~talkinghead.data.episodes.EpisodeDataset`),
    and the draws with them; no global random state is read.
    """
    keys = torch.stack([batch["clip_index"].long().cpu(), batch["target_index"].long().cpu(),
                        batch["source_indices"][:, 0].long().cpu()], 1)
    out = []
    for clip, target, source in keys.tolist():
        generator = torch.Generator().manual_seed(1_000_003 * clip + 7919 * target + source)
        out.append(torch.rand(count, generator=generator))
    return torch.stack(out)


def bank_choice(bank_identities: torch.Tensor, own: torch.Tensor, draws: torch.Tensor, exclude_own: bool) -> torch.Tensor:
    """(b, n) bool: the bank entries of one person per episode, drawn among the others (``exclude_own``)."""
    people = torch.unique(bank_identities[bank_identities >= 0])  # -1: an empty slot
    allowed = []
    for person_self, draw in zip(own.tolist(), draws.tolist()):
        pool = people[people != person_self] if exclude_own else people
        if len(pool) == 0:
            allowed.append(torch.zeros_like(bank_identities, dtype=torch.bool))
            continue
        person = pool[min(int(draw * len(pool)), len(pool) - 1)]
        allowed.append(bank_identities == person)
    return torch.stack(allowed)


class MouthPhases:
    """G and D phases of a mouth stage.

    Args:
        config: the mouth generator's config.
        weights: loss weights with ``mouth`` (L1), ``perceptual``, ``gan`` and ``feature_matching``.
        perceptual: ``(output, target) -> scalar`` perceptual loss of the method's objective.
        modules: networks that train (the generator, and the discriminator when adversarial).
    """

    def __init__(self, config: MouthGeneratorConfig, weights, perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 modules):
        self.config = config
        self.weights = weights
        self.perceptual = perceptual
        self.adversarial = DISCRIMINATOR in modules and (weights.gan > 0 or weights.feature_matching > 0)
        self.trained = [GENERATOR] + ([DISCRIMINATOR] if self.adversarial else [])
        self._fakes: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def crops(self, nets: Mapping[str, nn.Module], batch, train: bool):
        """(the generator's inputs, the real crop, the inner mask, the paint mask) of a batch."""
        frames = batch["target_image"]
        real = cut_mouth(frames, batch["target_dense"], self.config)
        b = frames.shape[0]
        draws = episode_draws(batch)  # (b, 4) in [0, 1)
        if train:
            factors = 1.0 + (MAX_SOFTENING - 1.0) * draws[:, 0]
            keep = (draws[:, 1] >= REFERENCE_DROPOUT).to(frames.dtype).to(frames.device)
        else:
            factors = torch.full((b,), MAX_SOFTENING ** 0.5)
            keep = torch.ones(b, dtype=frames.dtype, device=frames.device)
        seen = MouthCrop(theta=real.theta, image=soften_crops(real.image, factors), inner=real.inner, outer=real.outer,
                         ring=real.ring)
        source_points = batch["source_dense"][:, 0]
        reference = cut_mouth(batch["source_images"][:, 0], source_points, self.config)
        generator = unwrap(nets[GENERATOR])
        allowed = bank_choice(generator.bank_identities, batch["identity_index"].cpu(), draws[:, 2], exclude_own=train)
        retrieved = retrieve(seen, generator.bank_crops(), generator.bank_rings, allowed.to(frames.device))
        own = reference.image.new_zeros(b, dtype=torch.bool)
        if train:
            own = (draws[:, 3] < OWN_MOUTH_SHARE).to(frames.device) & (mouth_opening(source_points) >= OWN_MOUTH_OPEN)
        if own.any():
            own_fitted = retrieve(seen, reference.image, reference.ring, torch.eye(b, dtype=torch.bool, device=frames.device))
            retrieved = torch.where(own[:, None, None, None], own_fitted, retrieved)
        keep = keep[:, None, None, None]
        x = generator_inputs(seen, reference.image * keep, reference.inner * keep, retrieved, self.config)
        return x, real.image, real.inner, paint_mask(seen, self.config)

    def paint(self, nets: Mapping[str, nn.Module], batch, train: bool = True):
        """(the painted crop, the real crop, the inner mask): lerp(real, G(x), P)."""
        x, real, inner, mask = self.crops(nets, batch, train)
        return torch.lerp(real, nets[GENERATOR](x), mask), real, inner

    def g_loss(self, batch, nets):
        painted, real, inner = self.paint(nets, batch)
        w = self.weights
        terms = {}
        if w.mouth > 0:
            terms["mouth"] = F.l1_loss(painted.float(), real.float())
        if w.perceptual > 0:
            terms["perceptual"] = self.perceptual(painted, real)
        if self.adversarial:
            fake = nets[DISCRIMINATOR](torch.cat([painted, inner], 1))
            if w.gan > 0:
                terms["gan"] = lsgan_g_loss(fake)
            if w.feature_matching > 0:
                with torch.no_grad():
                    real_out = nets[DISCRIMINATOR](torch.cat([real, inner], 1))
                terms["feature_matching"] = feature_matching_loss(real_out, fake)
            self._fakes[id(batch)] = (painted.detach(), real, inner)
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, terms

    def d_loss(self, batch, nets):
        stored = self._fakes.pop(id(batch), None)
        if stored is None:
            with torch.no_grad():
                painted, real, inner = self.paint(nets, batch)
        else:
            painted, real, inner = stored
        real_out = nets[DISCRIMINATOR](torch.cat([real, inner], 1))
        fake_out = nets[DISCRIMINATOR](torch.cat([painted, inner], 1))
        loss = lsgan_d_loss(real_out, fake_out)
        return self.weights.gan * loss, {"d_lsgan": loss}

    def phases(self) -> list[Phase]:
        phases = [Phase("G", "generator", [GENERATOR], self.g_loss)]
        if self.adversarial:
            phases.append(Phase("D", "discriminator", [DISCRIMINATOR], self.d_loss))
        return phases

    def optimizers(self, trainer: Trainer, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        """Adam for the generator and, when adversarial, the discriminator."""
        out = {"generator": torch.optim.Adam([{"params": list(trainer.networks[GENERATOR].parameters()), "lr_mul": 1.0}],
                                             lr=lr, betas=betas)}
        if self.adversarial:
            out["discriminator"] = torch.optim.Adam(
                [{"params": list(trainer.networks[DISCRIMINATOR].parameters()), "lr_mul": 1.0}], lr=lr, betas=betas)
        return out

    def sample(self, nets, batch):
        """Rows of the sample grid at the crop's size: the real crop, what G sees, the retrieved interior, the painted crop."""
        x, real, _, mask = self.crops(nets, batch, train=False)
        painted = torch.lerp(real, nets[GENERATOR](x), mask)
        return [real, x[:, :3], torch.lerp(real, x[:, 9:12], mask), painted]

    def measure(self, nets, batch):
        """Held-out numbers on the crops: L1 / PSNR of the painted crop, and L1 inside the opening."""
        painted, real, inner = self.paint(nets, batch, train=False)
        inside = ((painted - real).abs().mean(dim=1, keepdim=True) * inner).flatten(1).sum(1) / inner.flatten(1).sum(1).clamp_min(1.0)
        return {"l1": l1(painted, real), "psnr": psnr(painted, real), "l1_opening": inside}

