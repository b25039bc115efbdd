"""LSR's training recipe: one plain function per stage, and its registration.

* :func:`layout_pretrain_stage`: E_l + G_l with LSR Eq. 2 (cross-entropy against the oracle
  segmentation + lambda_R perceptual loss on the extra RGB output R_t), LSR §3.2.
* :func:`full_stage`: all networks with LSR Eq. 4 (reconstruction + adversarial + latent L2),
  the cross-entropy off so G_l's output becomes a latent layout, LSR §3.3-3.4.

Subject fine-tuning (§3.5) is :func:`talkinghead.training.lsr_finetune.finetune_lsr_networks`;
it reuses the full stage's phases (:class:`FullObjectivePhases`).
"""

from __future__ import annotations

import torch.nn.functional as F

from talkinghead.config.lsr import LSRTrainConfig, StageConfig
from talkinghead.data.holdout import l1, psnr
from talkinghead.losses.factory import PerceptualNetworks, build_perceptual_networks
from talkinghead.models.lsr import METHOD, encode_latent, synthesize
from talkinghead.training.image_grid import colorize_layout
from talkinghead.training.lsr_finetune import finetune_lsr_networks
from talkinghead.training.lsr_objective import LSRObjective, needed_networks
from talkinghead.training.lsr_phases import FullObjectivePhases, frozen_parameters
from talkinghead.training.recipe import TrainingRecipe, TrainingSetupError, register_recipe
from talkinghead.training.stage_plumbing import adam, eval_dataset, plan_stage, stage_dataset, trainable_parameters
from talkinghead.training.trainer import Phase, StagePlan, Trainer


def requires_segmentation(stage: StageConfig) -> bool:
    """Layout pre-training (and any stage with the cross-entropy on) reads the oracle segmentation.

    (The ``oracle`` ablation's full stage reads it too; :func:`full_stage` checks that one.)
    """
    return stage.name == "layout_pretrain" or stage.loss_weights.segmentation > 0


def perceptual_networks(config: LSRTrainConfig) -> PerceptualNetworks:
    """The pretrained loss networks every stage of the run needs (built once)."""
    needed = set().union(*(needed_networks(s.loss_weights) for s in config.stages))
    return build_perceptual_networks(needed, config.trainer.perceptual, identity_fallback=True)


# ---------------------------------------------------------------------- stages
def layout_pretrain_stage(
    trainer: Trainer, config: LSRTrainConfig, stage: StageConfig, index: int, perceptual: PerceptualNetworks
) -> StagePlan:
    """LSR §3.2: E_l and G_l learn to predict the oracle segmentation of a new view (LSR Eq. 1-2)."""
    if config.model.synthesis not in ("layout", "adain_unet"):
        raise TrainingSetupError(
            f"model.synthesis={config.model.synthesis!r} has no layout generator to pre-train; "
            "list only the full stage (see configs/lsr/ablations/)"
        )
    segmentation = requires_segmentation(stage)
    dataset = stage_dataset(config, stage, require_segmentation=segmentation)
    objective = LSRObjective(stage.loss_weights, perceptual).to(trainer.device)
    activation = config.model.layout_generator.layout_activation
    trained = [m for m in stage.modules if m in ("layout_encoder", "layout_generator")]
    if set(stage.modules) - set(trained):
        raise TrainingSetupError(
            f"stage layout_pretrain trains only layout_encoder and layout_generator (LSR Eq. 2), got {stage.modules}"
        )

    def predict(nets, batch):
        z_layout = encode_latent(nets["layout_encoder"], batch["source_images"], batch["source_landmarks"])
        return synthesize(
            nets["layout_generator"], None, batch["target_landmarks"], z_layout, None,
            layout_activation=activation, with_rgb=True,
        )

    def loss(batch, nets):
        out = predict(nets, batch)
        return objective.layout_pretrain(out.layout_logits, out.rgb, batch["target_image"], batch["target_segmentation"])

    def sample(nets, batch):
        out = predict(nets, batch)
        oracle = F.one_hot(batch["target_segmentation"], out.layout_logits.shape[1]).permute(0, 3, 1, 2).float()
        return [
            batch["source_images"][:, 0], batch["target_landmarks"], colorize_layout(out.layout_logits),
            colorize_layout(oracle), out.rgb, batch["target_image"],
        ]

    def measure(nets, batch):
        out = predict(nets, batch)
        agree = (out.layout_logits.argmax(1) == batch["target_segmentation"]).float().flatten(1).mean(1)
        return {
            "rgb_l1": l1(out.rgb, batch["target_image"]),
            "rgb_psnr": psnr(out.rgb, batch["target_image"]),
            "segmentation_accuracy": agree,
        }

    optimizers = {"layout": adam(trainable_parameters(trainer, trained), stage.lr, stage.betas)}
    return plan_stage(
        trainer, config, stage, index,
        dataset=dataset, trained=trained, optimizers=optimizers,
        phases=[Phase("G_layout", "layout", trained, loss)],
        sample=sample, measure=measure,
        eval_data=eval_dataset(config, stage, require_segmentation=segmentation),
    )


def full_stage(
    trainer: Trainer, config: LSRTrainConfig, stage: StageConfig, index: int, perceptual: PerceptualNetworks
) -> StagePlan:
    """LSR §3.3-3.4: every network with LSR Eq. 4; the layout is free to become a latent representation."""
    segmentation = requires_segmentation(stage) or config.model.synthesis == "oracle"
    objective = LSRObjective(stage.loss_weights, perceptual).to(trainer.device)
    full = FullObjectivePhases(objective, config.model, stage.modules, stage.r1_gamma, stage.r1_every)

    def measure(nets, batch):
        image = full.generate(nets, batch)[0].image
        return {"l1": l1(image, batch["target_image"]), "psnr": psnr(image, batch["target_image"])}

    return plan_stage(
        trainer, config, stage, index,
        dataset=stage_dataset(config, stage, require_segmentation=segmentation),
        trained=full.trained, optimizers=full.optimizers(trainer, stage.lr, stage.betas),
        phases=full.phases(), sample=full.sample, measure=measure,
        eval_data=eval_dataset(config, stage, require_segmentation=segmentation),
        frozen_parameters=frozen_parameters(config.model.synthesis),
    )


RECIPE = register_recipe(
    TrainingRecipe(
        method=METHOD,
        stages={"layout_pretrain": layout_pretrain_stage, "full": full_stage},
        resources=perceptual_networks,
        requires_segmentation=requires_segmentation,
        finetune_config_kind="lsr_finetune",
        finetune=finetune_lsr_networks,
    )
)
