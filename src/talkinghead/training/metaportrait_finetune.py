"""MetaPortrait plain subject fine-tuning: tune the base model on one person's frames.

The person state (source frame, its landmark image, z_id) is computed once with the
trained model; then the networks in ``config.modules`` (default: the refinement network
and D) are tuned by reconstructing the subject's frames from that source with the full
stage's objective, in the common trainer. The eye and mouth terms need landmark points,
which subject frames do not carry, so they are off here.

Fast personalisation (§3.2) needs nothing extra here: a run that ends with the ``meta``
stage (Reptile) exports the meta-learned initialisation as the model's weights, so
fine-tuning such a release or checkpoint starts from it (and says so in its log).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from talkinghead.config.metaportrait import MODULE_NAMES, MetaPortraitFinetuneConfig
from talkinghead.data.holdout import l1, psnr
from talkinghead.data.subject import SubjectFrames
from talkinghead.models.metaportrait import METHOD, identity_code, select_source, slot_indices
from talkinghead.models.pretrained import PretrainedModel
from talkinghead.training.metaportrait_objective import MetaPortraitObjective
from talkinghead.training.metaportrait_phases import MetaPortraitPhases
from talkinghead.training.metaportrait_resources import build_resources
from talkinghead.training.recipe import FinetunedNetworks, TrainingSetupError
from talkinghead.training.stage_plumbing import finetune_log, finetuning_trainer, run_finetuning, subject_batch_stream
from talkinghead.training.trainer import StagePlan, Trainer


def is_meta_learned(info: dict) -> bool:
    """Whether weights with this release/checkpoint ``info`` are a meta-learned initialisation.

    A release records the stages of its run (the last one made the weights); a checkpoint
    records the stage it was written in.
    """
    stages = info.get("stages") or []
    return info.get("stage") == "meta" or (bool(stages) and stages[-1] == "meta")


def finetune_metaportrait_networks(
    pretrained: PretrainedModel, subject: SubjectFrames, config: MetaPortraitFinetuneConfig,
    *, observe: Callable[[int, Mapping[str, nn.Module]], None] | None = None,
) -> FinetunedNetworks:
    """Fine-tune ``pretrained`` on prepared subject frames (in memory); nothing is written.

    Args:
        pretrained: the model (a meta-learned one personalises from its meta-learned weights).
        subject: the person's prepared frames.
        config: the fine-tuning settings.
        observe: called after every step with (steps done, the networks), e.g. to measure a
            personalisation curve in one run (``benchmarks/personalization.py``); it must not
            change the networks.
    """
    model = pretrained.config
    names = [n for n in MODULE_NAMES if n in pretrained.state_dicts]
    if "discriminator" in config.modules and "discriminator" not in names:
        raise TrainingSetupError(
            f"{pretrained.source}: has no discriminator weights, which fine-tuning with the adversarial loss needs; "
            "use a training checkpoint or a full release, or set modules=[refinement_network] and "
            "loss_weights.gan=0 loss_weights.feature_matching=0"
        )
    weights = config.loss_weights
    with finetuning_trainer(pretrained, names, config, METHOD) as trainer:
        device = trainer.device
        shared = build_resources(config.perceptual, True, option="perceptual")
        if shared.message:
            trainer.logger.info(shared.message)
        if is_meta_learned(pretrained.info):
            trainer.logger.info(f"{pretrained.source}: personalising from its meta-learned initialisation (Reptile)")
        id_net = shared.id_network.to(device)
        images, landmarks = subject.images.to(device), subject.landmarks.to(device)
        with torch.no_grad():  # the person state is computed once, from all the subject's frames
            source_image, source_landmarks = select_source(images[None], landmarks[None])
            z_id = identity_code(id_net, model, images[None])
        person = {"source_image": source_image.cpu(), "source_landmarks": source_landmarks.cpu(), "z_id": z_id.cpu()}
        objective = MetaPortraitObjective(weights, model, shared.perceptual, id_net).to(device)
        phases = MetaPortraitPhases(objective, model, config.modules, True, id_net)

        @torch.no_grad()
        def evaluate(nets) -> dict[str, float]:
            batch = {"target_image": images, "target_landmarks": landmarks}
            batch.update({k: v.to(device).expand(len(images), *v.shape[1:]) for k, v in person.items()})
            with trainer.autocast():
                out = phases.generate(nets, batch)[1]
            return {"l1": float(l1(out, images).mean()), "psnr": float(psnr(out, images).mean())}

        for net in trainer.networks.values():
            net.eval()
        before = evaluate(trainer.networks)
        plan = StagePlan(
            name="finetune", index=0, total_steps=config.steps, steps_per_epoch=config.steps,
            trained=phases.trained,
            optimizers=phases.optimizers(trainer, config.lr, config.betas, config.warp_lr_ratio),
            base_lr=config.lr, phases=phases.phases(),
            batches=subject_batch_stream(
                subject, person, batch_size=config.batch_size, seed=config.seed, total_steps=config.steps
            ),
            max_grad_norm=config.max_grad_norm, images_per_step=config.batch_size,
        )
        if observe is not None:
            def after_step(micro_batches, stage_step: int, lr: float) -> dict:
                observe(stage_step + 1, trainer.networks)
                return {}

            plan.update = after_step
        seconds_per_step, after = run_finetuning(trainer, plan, evaluate)
        with torch.no_grad():  # the person state keeps the subject's frames in slots, as encode does
            slots = slot_indices(landmarks[None], model.source_slots)[0]
            features = trainer.networks["refinement_network"].encode_source(images[slots]).cpu()
        extra = finetune_log(trainer)
    networks = {name: trainer.networks[name] for name in names}
    state = {
        "source_image": images[slots].cpu(),
        "source_landmarks": landmarks[slots].cpu(),
        "source_features": features,
        "z_id": person["z_id"][0],
    }
    return FinetunedNetworks(networks, state, seconds_per_step, before, after, extra)
