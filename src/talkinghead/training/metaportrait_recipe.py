"""MetaPortrait's training recipe: one plain function per stage, and its registration.

* :func:`warp_pretrain_stage`: E_w + F_w learn the flow with the warped-image perceptual
  loss L^VGG_w (the authors pre-train the warping network first).
* :func:`full_stage`: the refinement network and the discriminator join; every term of
  MetaPortrait Eq. 4, E_w and F_w at 0.1x the learning rate (official code).
* :func:`mouth_stage`: the mouth generator learns to paint the opening of real mouths on
  crops of the full-size frames (:mod:`talkinghead.training.mouth_phases`; not in the paper).
* :func:`meta_stage`: Reptile meta-learning of the initialisation that subject
  fine-tuning starts from (§3.2); its result is the model's weights, so a release of a run
  that ends with it personalises from the meta-learned initialisation.

Subject fine-tuning is :func:`talkinghead.training.metaportrait_finetune.finetune_metaportrait_networks`.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from talkinghead.config.metaportrait import WARP_MODULES, MetaPortraitStageConfig, MetaPortraitTrainConfig
from talkinghead.models.metaportrait import METHOD
from talkinghead.training.metaportrait_finetune import finetune_metaportrait_networks
from talkinghead.training.metaportrait_objective import MetaPortraitObjective
from talkinghead.training.metaportrait_phases import MetaPortraitPhases
from talkinghead.training.metaportrait_resources import MetaPortraitResources, build_resources, needs_identity
from talkinghead.training.mouth_bank_fill import prepare_bank
from talkinghead.training.mouth_phases import MouthPhases
from talkinghead.training.recipe import TrainingRecipe, register_recipe
from talkinghead.training.reptile import ReptileUpdate
from talkinghead.training.stage_plumbing import eval_dataset, plan_stage, stage_dataset
from talkinghead.training.trainer import StagePlan, Trainer


def resources(config: MetaPortraitTrainConfig) -> MetaPortraitResources:
    """The run's frozen networks (built once, handed to every stage)."""
    return build_resources(config.trainer.perceptual, any(needs_identity(s) for s in config.stages))


def requires_segmentation(stage: MetaPortraitStageConfig) -> bool:
    """MetaPortrait never reads oracle segmentation maps."""
    return False


def _stage(trainer: Trainer, config: MetaPortraitTrainConfig, stage: MetaPortraitStageConfig, index: int,
           shared: MetaPortraitResources, with_refinement: bool) -> StagePlan:
    id_net = shared.id_network.to(trainer.device) if (with_refinement and shared.id_network is not None) else None
    objective = MetaPortraitObjective(stage.loss_weights, config.model, shared.perceptual, id_net).to(trainer.device)
    phases = MetaPortraitPhases(objective, config.model, stage.modules, with_refinement, id_net)
    return plan_stage(
        trainer, config, stage, index,
        dataset=stage_dataset(config, stage),
        trained=phases.trained,
        optimizers=phases.optimizers(trainer, stage.lr, stage.betas, stage.warp_lr_ratio),
        phases=phases.phases(), sample=phases.sample, measure=phases.measure,
        eval_data=eval_dataset(config, stage),
    )


def warp_pretrain_stage(trainer: Trainer, config: MetaPortraitTrainConfig, stage: MetaPortraitStageConfig,
                        index: int, shared: MetaPortraitResources) -> StagePlan:
    """E_w + F_w with L^VGG_w between the warped source and the driving frame."""
    return _stage(trainer, config, stage, index, shared, with_refinement=False)


def full_stage(trainer: Trainer, config: MetaPortraitTrainConfig, stage: MetaPortraitStageConfig,
               index: int, shared: MetaPortraitResources) -> StagePlan:
    """Every network with MetaPortrait Eq. 4 (warp at 0.1x lr, refinement, LSGAN + feature matching)."""
    return _stage(trainer, config, stage, index, shared, with_refinement=True)


def mouth_stage(trainer: Trainer, config: MetaPortraitTrainConfig, stage: MetaPortraitStageConfig,
                index: int, shared: MetaPortraitResources) -> StagePlan:
    """The mouth generator (and its D) on mouth crops of frames at ``model.mouth.frame_size``; the face networks rest."""
    objective = MetaPortraitObjective(stage.loss_weights, config.model, shared.perceptual, None).to(trainer.device)
    phases = MouthPhases(config.model.mouth, stage.loss_weights, objective.perceptual, stage.modules)
    size = config.model.mouth.frame_size
    dataset = stage_dataset(config, stage, size=size, dense_points=True)
    prepare_bank(trainer, dataset, config.model.mouth)
    return plan_stage(
        trainer, config, stage, index,
        dataset=dataset,
        trained=phases.trained,
        optimizers=phases.optimizers(trainer, stage.lr, stage.betas),
        phases=phases.phases(), sample=phases.sample, measure=phases.measure,
        eval_data=eval_dataset(config, stage, size=size, dense_points=True),
    )


def meta_stage(trainer: Trainer, config: MetaPortraitTrainConfig, stage: MetaPortraitStageConfig,
               index: int, shared: MetaPortraitResources) -> StagePlan:
    """Reptile (§3.2): each episode is a task; ``inner_steps`` Adam steps on a copy, then epsilon of the way.

    The authors' settings are the stage's defaults: 2 inner steps, Adam at 2e-4, one support
    sample per task, the adversarial terms off (D is not used); MetaPortrait's generators have
    no spectral norm to remove. The inner Adam is created anew for every task.
    """
    id_net = shared.id_network.to(trainer.device)
    objective = MetaPortraitObjective(stage.loss_weights, config.model, shared.perceptual, id_net).to(trainer.device)
    phases = MetaPortraitPhases(objective, config.model, stage.modules, True, id_net)
    plan = plan_stage(
        trainer, config, stage, index,
        dataset=stage_dataset(config, stage),
        trained=[],  # no trainer phase: the update below moves the weights (and no DDP wrapper is needed)
        optimizers={}, phases=[], sample=phases.sample, measure=phases.measure,
        eval_data=eval_dataset(config, stage),
    )

    def inner_optimizer(copies, lr: float) -> torch.optim.Optimizer:
        groups = [{"params": list(net.parameters()), "lr": lr * (stage.warp_lr_ratio if name in WARP_MODULES else 1.0)}
                  for name, net in copies.items()]
        return torch.optim.Adam(groups, lr=lr, betas=stage.betas)

    update = ReptileUpdate(trainer, phases.generators, phases.g_loss, inner_steps=stage.inner_steps,
                           epsilon=stage.epsilon, optimizer=inner_optimizer, max_grad_norm=stage.max_grad_norm)
    return replace(plan, update=update)


RECIPE = register_recipe(
    TrainingRecipe(
        method=METHOD,
        stages={"warp_pretrain": warp_pretrain_stage, "full": full_stage, "meta": meta_stage, "mouth": mouth_stage},
        resources=resources,
        requires_segmentation=requires_segmentation,
        finetune_config_kind="metaportrait_finetune",
        finetune=finetune_metaportrait_networks,
    )
)
