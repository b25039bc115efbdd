"""FSTH few-shot fine-tuning (§3.3): a meta-learned model adapted to one person's T frames.

    e_NEW = 1/T sum_t E(x(t), y(t))        (FSTH Eq. 7, with the meta-learned E)
    psi' <- P e_NEW                        G's person-specific AdaIN parameters, now free
    w'   <- w0 + e_NEW                     D's realism vector, now free (FSTH Eq. 8)

then G (psi and psi') and D (theta, w', b) train on the T frames with FSTH Eq. 9-10 (the
meta-learning objective without L_MCH). E stays as it is. The person state of the result is
(e_NEW, psi'), so animation renders with the tuned psi'.
"""

from __future__ import annotations


import torch

from talkinghead.config.fsth import MODULE_NAMES, SUBJECT_MODULES, FSTHFinetuneConfig
from talkinghead.data.holdout import l1, psnr
from talkinghead.data.subject import SubjectFrames
from talkinghead.models.fsth import METHOD, SubjectParameter
from talkinghead.models.fsth_embedder import embed_frames
from talkinghead.models.pretrained import PretrainedModel
from talkinghead.training.fsth_objective import FSTHObjective, content_networks, needed_networks
from talkinghead.training.fsth_phases import FSTHPhases
from talkinghead.training.recipe import FinetunedNetworks, TrainingSetupError
from talkinghead.training.stage_plumbing import finetune_log, finetuning_trainer, run_finetuning, subject_batch_stream
from talkinghead.training.trainer import StagePlan


@torch.no_grad()
def subject_initialisation(embedder, generator, discriminator, images: torch.Tensor,
                           landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(e_NEW, psi' = P e_NEW, w' = w0 + e_NEW) of T frames (t, 3, s, s) and landmark images (t, c, s, s).

    Returns (N,), (adain_dim,) and (N,) tensors (w' None without a discriminator).
    """
    _, e_new = embed_frames(embedder, images[None], landmarks[None])  # (1, N), FSTH Eq. 7
    psi = generator.project(e_new)[0]
    w = discriminator.w0 + e_new[0] if discriminator is not None else None
    return e_new[0], psi, w


def finetune_fsth_networks(pretrained: PretrainedModel, subject: SubjectFrames,
                           config: FSTHFinetuneConfig) -> FinetunedNetworks:
    """Fine-tune ``pretrained`` on prepared subject frames (in memory, §3.3); nothing is written."""
    names = [n for n in MODULE_NAMES if n in pretrained.state_dicts]
    weights = config.loss_weights
    adversarial = weights.gan > 0 or weights.feature_matching > 0
    if adversarial and "discriminator" not in names:
        raise TrainingSetupError(
            f"{pretrained.source}: has no discriminator weights, which fine-tuning with FSTH Eq. 10 needs; use a training "
            "checkpoint or a full release, or fine-tune without it: loss_weights.gan=0 loss_weights.feature_matching=0"
        )
    with finetuning_trainer(pretrained, names, config, METHOD) as trainer:
        device = trainer.device
        perceptual = content_networks(needed_networks(weights), config.perceptual, option="perceptual")
        if perceptual.message:
            trainer.logger.info(perceptual.message)
        images, landmarks = subject.images.to(device), subject.landmarks.to(device)
        for net in trainer.networks.values():
            net.eval()
        discriminator = trainer.networks.get("discriminator")
        e_new, psi, w = subject_initialisation(trainer.networks["embedder"], trainer.networks["generator"],
                                               discriminator, images, landmarks)
        trainer.networks[SUBJECT_MODULES[0]] = SubjectParameter(psi).to(device)
        modules = ["generator"]
        if w is not None:
            trainer.networks[SUBJECT_MODULES[1]] = SubjectParameter(w).to(device)
            modules.append("discriminator")
        objective = FSTHObjective(weights, perceptual).to(device)
        phases = FSTHPhases(objective, modules, config.d_steps, subject=True)

        @torch.no_grad()
        def evaluate(nets) -> dict[str, float]:
            with trainer.autocast():
                out = phases.generate(nets, {"target_landmarks": landmarks}).image
            return {"l1": float(l1(out, images).mean()), "psnr": float(psnr(out, images).mean())}

        before = evaluate(trainer.networks)
        plan = StagePlan(
            name="finetune", index=0, total_steps=config.steps, steps_per_epoch=config.steps,
            trained=phases.trained,
            optimizers=phases.optimizers(trainer, config.lr, config.betas, config.d_lr_ratio),
            base_lr=config.lr, phases=phases.phases(),
            batches=subject_batch_stream(subject, {}, batch_size=config.batch_size, seed=config.seed,
                                         total_steps=config.steps),
            max_grad_norm=config.max_grad_norm, images_per_step=config.batch_size,
        )
        seconds_per_step, after = run_finetuning(trainer, plan, evaluate)
        adain = trainer.networks[SUBJECT_MODULES[0]].value.detach().cpu()
        extra = finetune_log(trainer)
    networks = {name: trainer.networks[name] for name in names}
    state = {"embedding": e_new.cpu(), "adain": adain}
    return FinetunedNetworks(networks, state, seconds_per_step, before, after, extra)
