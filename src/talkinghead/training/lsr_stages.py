"""LSR training: one plain function per stage, and the run that calls them in order.

* :func:`layout_pretrain_stage`: E_l + G_l with Eq. 2 (cross-entropy against the oracle
  segmentation + lambda_R perceptual loss on the extra RGB output R_t), LSR §3.2.
* :func:`full_stage`: all networks with Eq. 4 (reconstruction + adversarial + latent L2),
  the cross-entropy off so G_l's output becomes a latent layout, LSR §3.3-3.4.

:func:`train_lsr` validates the config and data before any compute, resumes from the
latest checkpoint, runs the stages in the order the config lists them (each starts from
the weights the previous one ended with) and exports the release weights at the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from talkinghead.config import dump_yaml, to_dict
from talkinghead.config.lsr import GENERATOR_MODULES, LSRTrainConfig, StageConfig
from talkinghead.data.dataset_format import PreparedDataset, preparation_settings
from talkinghead.data.episodes import EpisodeDataset
from talkinghead.evaluation.holdout import holdout_batches, l1, psnr
from talkinghead.losses.factory import PerceptualNetworks, build_perceptual_networks
from talkinghead.models.lsr import METHOD, build_networks, encode_latent, parameter_counts, synthesize
from talkinghead.training.distributed import DistributedContext, seed_everything
from talkinghead.training.image_grid import colorize_layout
from talkinghead.training.lsr_objective import LSRObjective, needed_networks
from talkinghead.training.release import save_release
from talkinghead.training.sampler import ResumableEpochSampler
from talkinghead.training.trainer import Phase, StagePlan, Trainer, TrainingInterrupted
from talkinghead.utils.atomic import atomic_write_text


class TrainingSetupError(ValueError):
    """A run that cannot start: bad data, a mismatched checkpoint, missing weights."""


# ------------------------------------------------------------------------ data
def stage_dataset(config: LSRTrainConfig, stage: StageConfig, split: str | None = None) -> EpisodeDataset:
    """The K-shot episodes a stage trains on (errors name the dataset and the fix)."""
    needs_segmentation = stage.name == "layout_pretrain" or stage.loss_weights.segmentation > 0
    try:
        return EpisodeDataset(
            config.data.root,
            split=split or config.data.split,
            k=stage.k,
            size=config.model.image_size,
            landmark_style=config.model.landmark_style,
            seed=config.trainer.seed,
            require_segmentation=needs_segmentation,
            holdout_fraction=config.data.holdout_fraction,
        )
    except ValueError as err:
        raise TrainingSetupError(f"stage {stage.name}: {err}") from err


def stage_length(stage: StageConfig, num_items: int, world_size: int) -> tuple[int, int]:
    """(total steps, steps per epoch) of a stage."""
    steps_per_epoch = max(1, num_items // stage.batch_size)
    total = stage.steps if stage.steps is not None else max(1, math.ceil(stage.epochs * steps_per_epoch))
    return total, steps_per_epoch


def micro_batch_size(stage: StageConfig, world_size: int, accumulation: int) -> int:
    """Episodes per forward pass on one process; the global batch must split evenly."""
    if stage.batch_size % (world_size * accumulation):
        raise TrainingSetupError(
            f"stage {stage.name}: batch_size {stage.batch_size} does not split over {world_size} process(es) x "
            f"{accumulation} accumulation step(s); choose a multiple of {world_size * accumulation}"
        )
    return stage.batch_size // (world_size * accumulation)


def batch_stream(
    dataset: EpisodeDataset, stage: StageConfig, config: LSRTrainConfig, context: DistributedContext, total_steps: int
):
    """``start_step -> iterator`` of each step's micro-batches, in a resumable order."""
    accumulation = config.trainer.grad_accumulation
    micro = micro_batch_size(stage, context.world_size, accumulation)

    def stream(start_step: int) -> Iterator[list[dict[str, torch.Tensor]]]:
        sampler = ResumableEpochSampler(
            len(dataset),
            per_rank_batch=micro * accumulation,
            world_size=context.world_size,
            rank=context.rank,
            seed=config.trainer.seed,
            start_step=start_step,
            total_steps=total_steps,
        )
        loader = DataLoader(
            dataset,
            batch_size=micro,
            sampler=sampler,
            num_workers=config.data.num_workers,
            pin_memory=context.device.type == "cuda",
        )
        batches = iter(loader)
        for _ in range(start_step, total_steps):
            yield [next(batches) for _ in range(accumulation)]

    return stream


def _eval_dataset(config: LSRTrainConfig, stage: StageConfig) -> EpisodeDataset | None:
    split = config.data.eval_split or config.data.split
    try:
        dataset = stage_dataset(config, stage, split)
    except TrainingSetupError:
        return None
    return dataset if any(len(dataset.holdout_frames(i)) for i in range(min(len(dataset), config.data.num_eval_clips))) else None


def _sample_batch(eval_data: EpisodeDataset | None, train_data: EpisodeDataset, count: int = 4) -> dict:
    """A fixed batch for the sample grids: held-out frames when there are any, else epoch-0 episodes."""
    if eval_data is not None:
        batches = list(holdout_batches(eval_data, num_clips=count, k=train_data.k, targets_per_clip=1))
        return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}
    items = [train_data[(i % len(train_data), 0)] for i in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def _holdout_means(eval_data: EpisodeDataset, config: LSRTrainConfig, device, nets, measure) -> dict[str, float]:
    """Means over the held-out targets of ``measure(nets, batch) -> {name: (b,) values}``."""
    sums: dict[str, float] = {}
    count = 0
    for batch in holdout_batches(
        eval_data, num_clips=config.data.num_eval_clips, k=config.data.eval_k,
        targets_per_clip=config.data.eval_targets_per_clip,
    ):
        values = measure(nets, {k: v.to(device) for k, v in batch.items()})
        for name, per_image in values.items():
            sums[name] = sums.get(name, 0.0) + float(per_image.sum())
        count += len(batch["target_image"])
    return {name: total / count for name, total in sums.items()}


def _adam(params, lr: float, betas: tuple[float, float], *, lr_ratio: float = 1.0) -> torch.optim.Adam:
    # Lazy R1 (StyleGAN2 App. B): the regularised optimiser's lr and betas are scaled by
    # ratio = every / (every + 1) so that its effective update matches an eager one.
    beta1, beta2 = betas
    # ``lr_mul`` keeps the ratio when the schedule sets the learning rate (``set_lr``).
    group = {"params": list(params), "lr_mul": lr_ratio}
    return torch.optim.Adam([group], lr=lr * lr_ratio, betas=(beta1**lr_ratio, beta2**lr_ratio))


def _params(trainer: Trainer, names, frozen: Mapping[str, Any] | None = None) -> list[nn.Parameter]:
    frozen = frozen or {}
    out = []
    for name in names:
        skip = frozen.get(name)
        out += [p for pname, p in trainer.networks[name].named_parameters() if not (skip and skip(pname))]
    return out


def _rgb_head(pname: str) -> bool:
    return pname.startswith("rgb_head")


# ---------------------------------------------------------------------- stages
def layout_pretrain_stage(
    trainer: Trainer, config: LSRTrainConfig, stage: StageConfig, index: int, perceptual: PerceptualNetworks
) -> StagePlan:
    """LSR §3.2: E_l and G_l learn to predict the oracle segmentation of a new view (Eq. 1-2)."""
    dataset = stage_dataset(config, stage)
    total, steps_per_epoch = stage_length(stage, len(dataset), trainer.context.world_size)
    objective = LSRObjective(stage.loss_weights, perceptual).to(trainer.device)
    activation = config.model.layout_generator.layout_activation
    trained = [m for m in stage.modules if m in ("layout_encoder", "layout_generator")]
    if set(stage.modules) - set(trained):
        raise TrainingSetupError(
            f"stage layout_pretrain trains only layout_encoder and layout_generator (Eq. 2), got {stage.modules}"
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

    eval_data = _eval_dataset(config, stage)

    def evaluate(nets):
        return _holdout_means(eval_data, config, trainer.device, nets, measure)

    optimizers = {"layout": _adam(_params(trainer, trained), stage.lr, stage.betas)}
    return StagePlan(
        name=stage.name,
        index=index,
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        trained=trained,
        optimizers=optimizers,
        base_lr=stage.lr,
        warmup_steps=stage.warmup_steps,
        decay_steps=stage.decay_steps if stage.decay_steps is not None else steps_per_epoch,
        decay_factor=stage.decay_factor,
        phases=[Phase("G_layout", "layout", trained, loss)],
        batches=batch_stream(dataset, stage, config, trainer.context, total),
        max_grad_norm=stage.max_grad_norm,
        sample=sample,
        sample_batch=_sample_batch(eval_data, dataset),
        evaluate=evaluate if eval_data is not None else None,
        images_per_step=stage.batch_size,
    )


def lsr_latents(nets: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor]):
    """(z^l, z^s) of a batch: precomputed ones (subject fine-tuning) or the K-shot encodings."""
    if "z_layout" in batch:
        return batch["z_layout"], batch["z_style"]
    return (
        encode_latent(nets["layout_encoder"], batch["source_images"], batch["source_landmarks"]),
        encode_latent(nets["style_encoder"], batch["source_images"], batch["source_landmarks"]),
    )


class FullObjectivePhases:
    """The phases of Eq. 4 (G, D, lazy R1), shared by the full stage and subject fine-tuning.

    Args:
        objective: the loss terms and their weights.
        model: the architecture config.
        modules: networks that train (generators among E_l, E_s, G_l, G_s; D).
        r1_gamma, r1_every: the R1 penalty.
    """

    def __init__(self, objective: LSRObjective, model, modules, r1_gamma: float, r1_every: int):
        self.objective = objective
        self.activation = model.layout_generator.layout_activation
        self.use_landmarks_in_d = model.discriminator.use_landmarks
        self.r1_gamma, self.r1_every = r1_gamma, r1_every
        weights = objective.weights
        self.adversarial = weights.gan > 0 and "discriminator" in modules
        self.generators = [m for m in modules if m in GENERATOR_MODULES]
        self.trained = self.generators + (["discriminator"] if self.adversarial else [])
        self._fakes: dict[int, torch.Tensor] = {}  # G phase output, reused by the same step's D phase

    def d_input(self, image: torch.Tensor, batch) -> torch.Tensor:
        if self.use_landmarks_in_d:
            return torch.cat([image, batch["target_landmarks"].to(image.dtype)], 1)
        return image

    def generate(self, nets, batch):
        """Eq. 1-3 for the batch's targets: (LSROutput, z^l, z^s)."""
        z_layout, z_style = lsr_latents(nets, batch)
        out = synthesize(
            nets["layout_generator"], nets["image_generator"], batch["target_landmarks"], z_layout, z_style,
            layout_activation=self.activation,
        )
        return out, z_layout, z_style

    def g_loss(self, batch, nets):
        out, z_layout, z_style = self.generate(nets, batch)
        weights = self.objective.weights
        fake_logits = nets["discriminator"](self.d_input(out.image, batch)) if weights.gan > 0 else None
        if self.adversarial:
            self._fakes[id(batch)] = out.image.detach()
        return self.objective.generator(
            out.image, batch["target_image"], z_layout, z_style, fake_logits,
            out.layout_logits, batch.get("target_segmentation"), batch.get("target_points"),
        )

    def d_loss(self, batch, nets):
        fake = self._fakes.pop(id(batch), None)
        if fake is None:
            with torch.no_grad():
                fake = self.generate(nets, batch)[0].image
        real_logits = nets["discriminator"](self.d_input(batch["target_image"], batch))
        fake_logits = nets["discriminator"](self.d_input(fake, batch))
        return self.objective.discriminator(real_logits, fake_logits)

    def r1_loss(self, batch, nets):
        real = self.d_input(batch["target_image"], batch).detach().float().requires_grad_(True)
        with torch.autocast(device_type=real.device.type, enabled=False):
            logits = nets["discriminator"](real)
        return self.objective.r1(logits, real, self.r1_gamma, self.r1_every)

    def phases(self) -> list[Phase]:
        phases = [Phase("G", "generator", self.generators, self.g_loss)]
        if self.adversarial:
            phases += [
                Phase("D", "discriminator", ["discriminator"], self.d_loss),
                Phase("D_reg", "discriminator", ["discriminator"], self.r1_loss, every=self.r1_every),
            ]
        return phases

    def optimizers(self, trainer: Trainer, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        """Adam for the generators and (lazy-R1-adjusted) for D."""
        out = {"generator": _adam(_params(trainer, self.generators, FROZEN), lr, betas)}
        if self.adversarial:
            ratio = self.r1_every / (self.r1_every + 1)
            out["discriminator"] = _adam(_params(trainer, ["discriminator"]), lr, betas, lr_ratio=ratio)
        return out

    def sample(self, nets, batch):
        out, _, _ = self.generate(nets, batch)
        first_source = batch["source_images"][:, 0] if "source_images" in batch else batch["target_image"]
        return [first_source, batch["target_landmarks"], colorize_layout(out.layout), out.image, batch["target_image"]]


FROZEN = {"layout_generator": _rgb_head}  # R_t is a pre-training output only


def full_stage(
    trainer: Trainer, config: LSRTrainConfig, stage: StageConfig, index: int, perceptual: PerceptualNetworks
) -> StagePlan:
    """LSR §3.3-3.4: every network with Eq. 4; the layout is free to become a latent representation."""
    dataset = stage_dataset(config, stage)
    total, steps_per_epoch = stage_length(stage, len(dataset), trainer.context.world_size)
    objective = LSRObjective(stage.loss_weights, perceptual).to(trainer.device)
    full = FullObjectivePhases(objective, config.model, stage.modules, stage.r1_gamma, stage.r1_every)
    eval_data = _eval_dataset(config, stage)

    def measure(nets, batch):
        image = full.generate(nets, batch)[0].image
        return {"l1": l1(image, batch["target_image"]), "psnr": psnr(image, batch["target_image"])}

    def evaluate(nets):
        return _holdout_means(eval_data, config, trainer.device, nets, measure)

    return StagePlan(
        name=stage.name,
        index=index,
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        trained=full.trained,
        optimizers=full.optimizers(trainer, stage.lr, stage.betas),
        base_lr=stage.lr,
        warmup_steps=stage.warmup_steps,
        decay_steps=stage.decay_steps if stage.decay_steps is not None else steps_per_epoch,
        decay_factor=stage.decay_factor,
        phases=full.phases(),
        batches=batch_stream(dataset, stage, config, trainer.context, total),
        max_grad_norm=stage.max_grad_norm,
        sample=full.sample,
        sample_batch=_sample_batch(eval_data, dataset),
        evaluate=evaluate if eval_data is not None else None,
        frozen_parameters=FROZEN,
        images_per_step=stage.batch_size,
    )


STAGES = {"layout_pretrain": layout_pretrain_stage, "full": full_stage}


# ------------------------------------------------------------------------- run
def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_checkpoint_matches(state: Mapping[str, Any], config: LSRTrainConfig, path: str) -> None:
    """Refuse a checkpoint of another method or architecture, naming what differs."""
    method = state.get("method")
    if method != METHOD:
        raise TrainingSetupError(f"{path}: is a checkpoint of method {method!r}, this run trains {METHOD!r}")
    saved = _flatten(state.get("config", {}).get("model", {}))
    current = _flatten(to_dict(config.model))
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        lines = [f"  model.{k}: checkpoint {saved.get(k)!r}, config {current.get(k)!r}" for k in diff]
        raise TrainingSetupError(
            f"{path}: was trained with another architecture:\n" + "\n".join(lines)
            + "\nResume with the run's own config (its config.yaml), or start a new run folder"
        )
    saved_stages = [s.get("name") for s in state.get("config", {}).get("stages", [])]
    current_stages = [s.name for s in config.stages]
    if saved_stages[: state["stage_index"] + 1] != current_stages[: state["stage_index"] + 1]:
        raise TrainingSetupError(
            f"{path}: the run's stages were {saved_stages}, the config lists {current_stages}; "
            "the stages up to the checkpoint's must stay the same to resume"
        )


def validate(config: LSRTrainConfig, context: DistributedContext) -> dict[str, int]:
    """Everything that can be checked before compute: data, segmentation, K, batch split."""
    if not config.data.root:
        raise TrainingSetupError("data.root is not set: pass data.root=PATH (a folder written by `talkinghead prepare`)")
    if not Path(config.data.root).is_dir():
        raise TrainingSetupError(f"data.root {config.data.root}: no such folder; run `talkinghead prepare` first")
    try:
        prepared = PreparedDataset(config.data.root)
    except Exception as err:  # the reader's own errors name the file
        raise TrainingSetupError(f"data.root {config.data.root}: {err}") from err
    if prepared.size < config.model.image_size:
        print(
            f"warning: {config.data.root} holds {prepared.size} px frames and the model trains at "
            f"{config.model.image_size} px; frames are upsampled"
        )
    lengths = {}
    for stage in config.stages:
        dataset = stage_dataset(config, stage)
        micro_batch_size(stage, context.world_size, config.trainer.grad_accumulation)
        lengths[stage.name] = stage_length(stage, len(dataset), context.world_size)[0]
    return lengths


def train_lsr(
    config: LSRTrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    context: DistributedContext | None = None,
    export: bool = True,
    max_steps: int | None = None,
) -> dict[str, dict[str, float]]:
    """Run every stage of ``config`` into ``run_dir``; returns each stage's last numbers.

    Args:
        config: the run.
        run_dir: output folder; it must be new unless ``resume``.
        resume: continue from the latest checkpoint in ``run_dir``.
        context: a distributed context (default: from the torchrun environment).
        export: write the release folder at the end.
        max_steps: stop after this many steps of this invocation (raises
            ``TrainingInterrupted`` after writing a checkpoint).
    """
    run_dir = Path(run_dir)
    own_context = context is None
    context = context or DistributedContext.from_env()
    if own_context:
        context.init(config.trainer.device)
    trainer = None
    try:
        from talkinghead.training.checkpoint import CheckpointManager

        manager = CheckpointManager(run_dir, keep=config.trainer.keep_checkpoints)
        state = None
        if resume:
            state = manager.load_latest()
            if state is None:
                raise TrainingSetupError(f"{run_dir}: --resume was given but the folder has no checkpoint")
            check_checkpoint_matches(state, config, str(manager.latest_path()))
        elif manager.latest_path() is not None:
            raise TrainingSetupError(
                f"{run_dir}: already holds checkpoints; pass --resume to continue that run, or choose a new folder"
            )
        lengths = validate(config, context)
        needed = set().union(*(needed_networks(s.loss_weights) for s in config.stages))
        perceptual = build_perceptual_networks(needed, config.trainer.perceptual, identity_fallback=True)
        torch.manual_seed(config.trainer.seed)  # the same on every rank: identical initial weights
        networks = build_networks(config.model)
        seed_everything(config.trainer.seed, context.rank)  # per-rank streams for everything else
        trainer = Trainer(
            method=METHOD,
            config=to_dict(config),
            trainer_config=config.trainer,
            run_dir=run_dir,
            networks=networks,
            ema_networks=GENERATOR_MODULES,
            context=context,
            max_steps=max_steps,
        )
        if perceptual.message:
            trainer.logger.info(perceptual.message)
        counts = parameter_counts(networks)
        trainer.logger.info(
            "parameters: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items())
            + "; stages: " + ", ".join(f"{k} {v} steps" for k, v in lengths.items())
        )
        if context.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "config.yaml", dump_yaml(config))
        if state is not None:
            trainer.load_networks(state)
            trainer.logger.info(
                f"resuming stage {state['stage']} at step {state['stage_step']} (global step {state['global_step']})"
            )
        results: dict[str, dict[str, float]] = {}
        for index, stage in enumerate(config.stages):
            stage_resume = None
            if state is not None:
                if index < state["stage_index"] or (index == state["stage_index"] and state["stage_complete"]):
                    continue
                if index == state["stage_index"]:
                    stage_resume = state
            if trainer.out_of_steps():
                raise TrainingInterrupted(
                    f"stopped by --max-steps {max_steps} after stage {config.stages[index - 1].name}; "
                    "continue with --resume"
                )
            plan = STAGES[stage.name](trainer, config, stage, index, perceptual)
            results[stage.name] = trainer.run_stage(plan, stage_resume)
        if export and context.is_main:
            export_release(trainer, config, run_dir / "release")
        context.barrier()
        return results
    finally:
        if trainer is not None:
            trainer.close()
        if own_context:
            context.shutdown()


def export_release(trainer: Trainer, config: LSRTrainConfig, directory: Path) -> Path:
    """``config.json`` + one safetensors file per network; generators are the EMA weights."""
    nets = trainer.ema_networks()
    modules = {name: nets[name] for name in nets}
    info = {"method": METHOD, "model": to_dict(config.model), "global_step": trainer.global_step,
            "weights": "exponential moving average of the generators; discriminator as trained"}
    prepare = preparation_settings(config.data.root)
    if prepare is not None:
        info["prepare"] = prepare  # the detector and crop inference must use
    return save_release(directory, info, modules, overwrite=True)
