"""FSTH's training recipe: the meta-learning stage (§3.2) and its registration.

:func:`meta_stage` trains E, G and D on K-shot episodes (K = 8 in the paper): E and G with
FSTH Eq. 3 at lr 5e-5, D with FSTH Eq. 6 at 2e-4, two D updates per G update. Each training clip of
the dataset split is one video i, the column W_i of the projection discriminator.

Few-shot fine-tuning (§3.3) is :func:`talkinghead.training.fsth_finetune.finetune_fsth_networks`.
"""

from __future__ import annotations

from talkinghead.config.fsth import FSTHStageConfig, FSTHTrainConfig
from talkinghead.losses.factory import PerceptualNetworks
from talkinghead.models.fsth import METHOD
from talkinghead.training.fsth_finetune import finetune_fsth_networks
from talkinghead.training.fsth_objective import FSTHObjective, content_networks, needed_networks
from talkinghead.training.fsth_phases import FSTHPhases
from talkinghead.training.recipe import TrainingRecipe, TrainingSetupError, register_recipe
from talkinghead.training.stage_plumbing import eval_dataset, plan_stage, stage_dataset
from talkinghead.training.trainer import StagePlan, Trainer


def resources(config: FSTHTrainConfig) -> PerceptualNetworks:
    """The content-loss networks every stage of the run needs (built once)."""
    needed = set().union(*(needed_networks(s.loss_weights) for s in config.stages))
    return content_networks(needed, config.trainer.perceptual)


def requires_segmentation(stage: FSTHStageConfig) -> bool:
    """FSTH never reads segmentation maps."""
    return False


def meta_stage(trainer: Trainer, config: FSTHTrainConfig, stage: FSTHStageConfig, index: int,
               perceptual: PerceptualNetworks) -> StagePlan:
    """§3.2: E, G and D trained adversarially on K-shot episodes of the training videos."""
    dataset = stage_dataset(config, stage)
    num_videos = config.model.discriminator.num_videos
    if len(dataset) > num_videos:
        raise TrainingSetupError(
            f"stage {stage.name}: {config.data.root} has {len(dataset)} training clips (videos i of FSTH Eq. 5) but D's W "
            f"has {num_videos} columns; set model.discriminator.num_videos={len(dataset)} or more (a new run)"
        )
    objective = FSTHObjective(stage.loss_weights, perceptual).to(trainer.device)
    phases = FSTHPhases(objective, stage.modules, stage.d_steps)
    return plan_stage(
        trainer, config, stage, index,
        dataset=dataset,
        trained=phases.trained,
        optimizers=phases.optimizers(trainer, stage.lr, stage.betas, stage.d_lr_ratio),
        phases=phases.phases(), sample=phases.sample, measure=phases.measure,
        eval_data=eval_dataset(config, stage),
    )


RECIPE = register_recipe(
    TrainingRecipe(
        method=METHOD,
        stages={"meta": meta_stage},
        resources=resources,
        requires_segmentation=requires_segmentation,
        finetune_config_kind="fsth_finetune",
        finetune=finetune_fsth_networks,
    )
)
