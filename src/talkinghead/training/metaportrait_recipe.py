"""MetaPortrait's training recipe: one plain function per stage, and its registration.

* :func:`warp_pretrain_stage`: E_w + F_w learn the flow with the warped-image perceptual
  loss L^VGG_w (the authors pre-train the warping network first).
* :func:`full_stage`: the refinement network and the discriminator join; every term of
  Eq. 4, E_w and F_w at 0.1x the learning rate (official code).

Subject fine-tuning is :func:`talkinghead.training.metaportrait_finetune.finetune_metaportrait_networks`.
"""

from __future__ import annotations

from talkinghead.config.metaportrait import MetaPortraitStageConfig, MetaPortraitTrainConfig
from talkinghead.models.metaportrait import METHOD
from talkinghead.training.metaportrait_finetune import finetune_metaportrait_networks
from talkinghead.training.metaportrait_objective import MetaPortraitObjective
from talkinghead.training.metaportrait_phases import MetaPortraitPhases
from talkinghead.training.metaportrait_resources import MetaPortraitResources, build_resources, needs_identity
from talkinghead.training.recipe import TrainingRecipe, register_recipe
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
    """Every network with Eq. 4 (warp at 0.1x lr, refinement, LSGAN + feature matching)."""
    return _stage(trainer, config, stage, index, shared, with_refinement=True)


RECIPE = register_recipe(
    TrainingRecipe(
        method=METHOD,
        stages={"warp_pretrain": warp_pretrain_stage, "full": full_stage},
        resources=resources,
        requires_segmentation=requires_segmentation,
        finetune_config_kind="metaportrait_finetune",
        finetune=finetune_metaportrait_networks,
    )
)
