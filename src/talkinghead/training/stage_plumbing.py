"""What every method's stage needs around its losses: episodes, length, batches, samples, held-out numbers.

A stage function of a recipe builds its phases and optimisers and calls
:func:`plan_stage`, which fills in the rest of the :class:`StagePlan` from the stage
config (length, schedule, resumable batch order, the fixed sample batch and the
held-out measurement) the same way for every method.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from talkinghead.config.base import to_dict
from talkinghead.config.training import StageSchedule, TrainerConfig
from talkinghead.data.episodes import EpisodeDataset
from talkinghead.data.holdout import holdout_batches
from talkinghead.training.distributed import DistributedContext, seed_everything
from talkinghead.training.recipe import TrainingSetupError
from talkinghead.training.sampler import ResumableEpochSampler
from talkinghead.training.trainer import Phase, StagePlan, Trainer


def stage_dataset(
    config: Any, stage: StageSchedule, *, require_segmentation: bool = False, split: str | None = None,
    size: int | None = None, dense_points: bool = False,
) -> EpisodeDataset:
    """The K-shot episodes a stage trains on (errors name the dataset and the fix).

    ``size``: the frames' side (None: the model's ``image_size``); ``dense_points``: items
    carry the dense landmarks too.
    """
    try:
        return EpisodeDataset(
            config.data.root,
            split=split or config.data.split,
            k=stage.k,
            size=size or config.model.image_size,
            landmark_style=config.model.landmark_style,
            seed=config.trainer.seed,
            require_segmentation=require_segmentation,
            holdout_fraction=config.data.holdout_fraction,
            dense_points=dense_points,
        )
    except ValueError as err:
        raise TrainingSetupError(f"stage {stage.name}: {err}") from err


def stage_length(stage: StageSchedule, num_items: int) -> tuple[int, int]:
    """(total steps, steps per epoch) of a stage."""
    steps_per_epoch = max(1, num_items // stage.batch_size)
    total = stage.steps if stage.steps is not None else max(1, math.ceil(stage.epochs * steps_per_epoch))
    return total, steps_per_epoch


def micro_batch_size(stage: StageSchedule, world_size: int, accumulation: int) -> int:
    """Episodes per forward pass on one process; the global batch must split evenly."""
    if stage.batch_size % (world_size * accumulation):
        raise TrainingSetupError(
            f"stage {stage.name}: batch_size {stage.batch_size} does not split over {world_size} process(es) x "
            f"{accumulation} accumulation step(s); choose a multiple of {world_size * accumulation}"
        )
    return stage.batch_size // (world_size * accumulation)


def batch_stream(
    dataset: EpisodeDataset, stage: StageSchedule, config: Any, context: DistributedContext, total_steps: int
) -> Callable[[int], Iterator[list[dict[str, torch.Tensor]]]]:
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


def eval_dataset(config: Any, stage: StageSchedule, *, require_segmentation: bool = False,
                 size: int | None = None, dense_points: bool = False) -> EpisodeDataset | None:
    """Episodes of the held-out numbers (``data.eval_split``), or None when no clip holds frames out."""
    split = config.data.eval_split or config.data.split
    try:
        dataset = stage_dataset(config, stage, require_segmentation=require_segmentation, split=split, size=size,
                                dense_points=dense_points)
    except TrainingSetupError:
        return None
    clips = range(min(len(dataset), config.data.num_eval_clips))
    return dataset if any(len(dataset.holdout_frames(i)) for i in clips) else None


def sample_batch(eval_data: EpisodeDataset | None, train_data: EpisodeDataset, count: int = 4) -> dict:
    """A fixed batch for the sample grids: held-out frames when there are any, else epoch-0 episodes."""
    if eval_data is not None:
        batches = list(holdout_batches(eval_data, num_clips=count, k=train_data.k, targets_per_clip=1))
        return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}
    items = [train_data[(i % len(train_data), 0)] for i in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def holdout_means(eval_data: EpisodeDataset, config: Any, device, nets, measure) -> dict[str, float]:
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


def adam(params, lr: float, betas: tuple[float, float], *, lr_ratio: float = 1.0) -> torch.optim.Adam:
    """Adam over ``params``; ``lr_ratio`` < 1 for a lazily regularised network.

    Lazy R1 (StyleGAN2 App. B): the regularised optimiser's lr and betas are scaled by
    ratio = every / (every + 1) so that its effective update matches an eager one.
    """
    beta1, beta2 = betas
    # ``lr_mul`` keeps the ratio when the schedule sets the learning rate (``set_lr``).
    group = {"params": list(params), "lr_mul": lr_ratio}
    return torch.optim.Adam([group], lr=lr * lr_ratio, betas=(beta1**lr_ratio, beta2**lr_ratio))


def trainable_parameters(
    trainer: Trainer, names: Sequence[str], frozen: Mapping[str, Callable[[str], bool]] | None = None
) -> list[nn.Parameter]:
    """Parameters of the named networks, less those a ``frozen`` predicate keeps fixed."""
    frozen = frozen or {}
    out = []
    for name in names:
        skip = frozen.get(name)
        out += [p for pname, p in trainer.networks[name].named_parameters() if not (skip and skip(pname))]
    return out


def plan_stage(
    trainer: Trainer,
    config: Any,
    stage: StageSchedule,
    index: int,
    *,
    dataset: EpisodeDataset,
    trained: Sequence[str],
    optimizers: dict[str, torch.optim.Optimizer],
    phases: Sequence[Phase],
    sample: Callable[[Mapping[str, nn.Module], dict], list[torch.Tensor]] | None = None,
    measure: Callable[[Mapping[str, nn.Module], dict], dict[str, torch.Tensor]] | None = None,
    eval_data: EpisodeDataset | None = None,
    frozen_parameters: dict[str, Callable[[str], bool]] | None = None,
) -> StagePlan:
    """The :class:`StagePlan` of a training stage, its schedule and data taken from ``stage``.

    Args:
        trainer: the run's trainer.
        config: the run config.
        stage: the stage config (length, K, batch, learning-rate schedule, clipping).
        index: position of the stage in the run.
        dataset: the stage's training episodes.
        trained: networks the stage trains.
        optimizers: by name, as the phases refer to them.
        phases: what one step does.
        sample: ``(networks, batch) -> rows`` of the sample grid.
        measure: ``(networks, batch) -> {name: (b,) values}`` on held-out targets.
        eval_data: the held-out episodes ``measure`` runs on (None: no held-out numbers).
        frozen_parameters: parameters that stay fixed although their network trains.
    """
    total, steps_per_epoch = stage_length(stage, len(dataset))
    evaluate = None
    if measure is not None and eval_data is not None:
        def evaluate(nets):
            return holdout_means(eval_data, config, trainer.device, nets, measure)

    return StagePlan(
        name=stage.name,
        index=index,
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        trained=list(trained),
        optimizers=optimizers,
        base_lr=stage.lr,
        warmup_steps=stage.warmup_steps,
        decay_steps=stage.decay_steps if stage.decay_steps is not None else steps_per_epoch,
        decay_factor=stage.decay_factor,
        phases=list(phases),
        batches=batch_stream(dataset, stage, config, trainer.context, total),
        max_grad_norm=stage.max_grad_norm,
        sample=sample,
        sample_batch=sample_batch(eval_data, dataset) if sample is not None else None,
        evaluate=evaluate,
        frozen_parameters=dict(frozen_parameters or {}),
        images_per_step=stage.batch_size,
    )


def subject_batch_stream(
    subject: Any, person: Mapping[str, torch.Tensor], *, batch_size: int, seed: int, total_steps: int
) -> Callable[[int], Iterator[list[dict[str, torch.Tensor]]]]:
    """Subject fine-tuning's batches: each step draws ``batch_size`` of the subject's frames, seeded by step.

    Args:
        subject: the prepared subject frames (``images``, ``landmarks``, ``len``).
        person: the person state computed once before tuning, each tensor (1, ...); it is
            repeated for every frame of a batch.
        batch_size, seed, total_steps: as the fine-tuning config says.
    """

    def batch_for(step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([seed, step])
        n = len(subject)
        idx = torch.from_numpy(rng.choice(n, size=batch_size, replace=batch_size > n))
        batch = {"target_image": subject.images[idx], "target_landmarks": subject.landmarks[idx]}
        for name, value in person.items():
            batch[name] = value.expand(len(idx), *value.shape[1:]).clone()
        return batch

    def stream(start_step: int) -> Iterator[list[dict[str, torch.Tensor]]]:
        for step in range(start_step, total_steps):
            yield [batch_for(step)]

    return stream


@contextmanager
def finetuning_trainer(pretrained: Any, names: Sequence[str], config: Any, method: str) -> Iterator[Trainer]:
    """A :class:`Trainer` for in-memory subject fine-tuning, in a temporary run folder removed afterwards.

    Args:
        pretrained: the trained model (its networks ``names`` are built with their weights).
        names: the networks the fine-tuning run holds.
        config: the method's fine-tuning config (seed, device, precision, steps, perceptual).
        method: the method's registered name.
    """
    context = DistributedContext().init(config.device)
    seed_everything(config.seed, 0)
    with tempfile.TemporaryDirectory(prefix="talkinghead-finetune-") as run_dir:
        trainer = Trainer(
            method=method,
            config={"method": method, "model": to_dict(pretrained.config), "finetune": to_dict(config)},
            trainer_config=finetune_trainer_config(config),
            run_dir=run_dir,
            networks=pretrained.build(list(names)),
            ema_networks=[],
            context=context,
        )
        try:
            yield trainer
        finally:
            trainer.close()
            context.shutdown()


def run_finetuning(trainer: Trainer, plan: StagePlan,
                   evaluate: Callable[[dict], dict[str, float]]) -> tuple[float, dict[str, float]]:
    """Train a fine-tuning ``plan``, then put the networks in eval mode and measure them again.

    Returns:
        (seconds per step, ``evaluate(trainer.networks)`` after training).
    """
    start = time.perf_counter()
    trainer.run_stage(plan)
    seconds_per_step = (time.perf_counter() - start) / plan.total_steps
    for net in trainer.networks.values():
        net.eval()
    return seconds_per_step, evaluate(trainer.networks)


def finetune_log(trainer: Trainer) -> dict[str, str]:
    """The fine-tuning run's ``metrics.jsonl`` as a release extra file (empty when nothing was logged)."""
    metrics = trainer.run_dir / "metrics.jsonl"
    return {"finetune_metrics.jsonl": metrics.read_text()} if metrics.exists() else {}


def finetune_trainer_config(config: Any) -> TrainerConfig:
    """The trainer options of an in-memory fine-tuning run (no EMA, one final checkpoint, 20 log lines)."""
    return TrainerConfig(
        seed=config.seed,
        device=config.device,
        precision=config.precision,
        ema_decay=0.0,
        log_every=max(1, config.steps // 20),
        image_every=config.steps,
        checkpoint_every=config.steps * 10,
        keep_checkpoints=1,
        perceptual=config.perceptual,
    )
