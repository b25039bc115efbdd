"""LSR subject fine-tuning (§3.5): personalise a meta-trained model to one new person.

The person's layout and style latents are computed once with the frozen encoders; then
G_l, G_s and D are tuned by reconstructing the person's K images with the objective of
LSR Eq. 4, in the same trainer and with the same phases as the full training stage. The
generic driver (:mod:`talkinghead.training.finetune`) prepares the images and writes the
release; this module only tunes.
"""

from __future__ import annotations


import torch

from talkinghead.config.lsr import MODULE_NAMES, FinetuneConfig
from talkinghead.data.holdout import l1, psnr
from talkinghead.data.subject import SubjectFrames
from talkinghead.losses.factory import build_perceptual_networks
from talkinghead.models.lsr import METHOD, encode_latent
from talkinghead.models.pretrained import PretrainedModel
from talkinghead.training.lsr_objective import LSRObjective, needed_networks
from talkinghead.training.lsr_phases import FullObjectivePhases, frozen_parameters
from talkinghead.training.recipe import FinetunedNetworks, TrainingSetupError
from talkinghead.training.stage_plumbing import finetune_log, finetuning_trainer, run_finetuning, subject_batch_stream
from talkinghead.training.trainer import StagePlan, Trainer


def finetune_lsr_networks(
    pretrained: PretrainedModel, subject: SubjectFrames, config: FinetuneConfig
) -> FinetunedNetworks:
    """Fine-tune ``pretrained`` on prepared subject frames (in memory); nothing is written.

    The latents are computed once with the frozen encoders (§3.5); then the modules in
    ``config.modules`` are tuned with the full stage's phases in the common trainer.
    """
    model = pretrained.config
    names = [n for n in MODULE_NAMES if n in pretrained.state_dicts]
    if "discriminator" in config.modules and "discriminator" not in names:
        raise TrainingSetupError(
            f"{pretrained.source}: has no discriminator weights, which fine-tuning with the adversarial loss needs; "
            "use a training checkpoint or a full release, or set modules without discriminator and loss_weights.gan=0"
        )
    perceptual = build_perceptual_networks(needed_networks(config.loss_weights), config.perceptual, option="perceptual")
    with finetuning_trainer(pretrained, names, config, METHOD) as trainer:
        if perceptual.message:
            trainer.logger.info(perceptual.message)
        device = trainer.device
        images, landmarks = subject.images.to(device), subject.landmarks.to(device)
        with torch.no_grad():  # the latents are computed once (§3.5)
            z_layout = encode_latent(trainer.networks["layout_encoder"], images[None], landmarks[None]).cpu()
            z_style = encode_latent(trainer.networks["style_encoder"], images[None], landmarks[None]).cpu()
        objective = LSRObjective(config.loss_weights, perceptual).to(device)
        tuned = [m for m in config.modules if m != "layout_encoder" and m != "style_encoder"]
        full = FullObjectivePhases(objective, model, tuned, config.r1_gamma, config.r1_every)

        @torch.no_grad()
        def evaluate(nets) -> dict[str, float]:
            batch = {
                "target_image": images,
                "target_landmarks": landmarks,
                "z_layout": z_layout.to(device).expand(len(images), -1),
                "z_style": z_style.to(device).expand(len(images), -1),
            }
            with trainer.autocast():
                out = full.generate(nets, batch)[0].image
            return {"l1": float(l1(out, images).mean()), "psnr": float(psnr(out, images).mean())}

        for net in trainer.networks.values():
            net.eval()
        before = evaluate(trainer.networks)
        plan = StagePlan(
            name="finetune",
            index=0,
            total_steps=config.steps,
            steps_per_epoch=config.steps,
            trained=full.trained,
            optimizers=full.optimizers(trainer, config.lr, config.betas),
            base_lr=config.lr,
            phases=full.phases(),
            batches=subject_batch_stream(
                subject, {"z_layout": z_layout, "z_style": z_style},
                batch_size=config.batch_size, seed=config.seed, total_steps=config.steps,
            ),
            max_grad_norm=config.max_grad_norm,
            frozen_parameters=frozen_parameters(model.synthesis),
            images_per_step=config.batch_size,
        )
        seconds_per_step, after = run_finetuning(trainer, plan, evaluate)
        extra = finetune_log(trainer)
    networks = {name: trainer.networks[name] for name in names}
    state = {"z_layout": z_layout.reshape(-1), "z_style": z_style.reshape(-1)}
    return FinetunedNetworks(networks, state, seconds_per_step, before, after, extra)
