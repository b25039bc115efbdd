"""Schema shared by every method's training: the data, the trainer, a stage's length and schedule.

A method's run config (``config/<method>.py``) combines these with its own architecture
and stage fields; the one trainer and the run driver read only what is defined here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

ADAM_BETAS = (0.0, 0.999)  # LSR A.1 and StyleGAN2
MAX_GRAD_NORM = 10.0


class LossWeightsBase:
    """Resolving of a method's loss-weight dataclass: every field a term's weight, None = the stage default."""

    def resolved(self, defaults: dict[str, float]):
        """A copy with every unset term taken from ``defaults`` (missing there: 0)."""
        values = {k: (v if v is not None else float(defaults.get(k, 0.0))) for k, v in vars(self).items()}
        negative = sorted(k for k, v in values.items() if v < 0)
        if negative:
            raise ValueError(f"loss weights must be >= 0, got negative {negative}")
        return type(self)(**values)


@dataclass
class StageSchedule:
    """How long a stage runs, on what episodes, and its optimiser schedule (any method).

    A method's stage config subclasses this and adds its ``name`` choices, loss weights
    and the like.

    Args:
        name: the stage (one of the method's stage functions).
        epochs: length in passes over the training clips.
        steps: length in optimiser steps; overrides ``epochs`` when set.
        k: source frames per episode.
        batch_size: episodes per step, over all processes.
        lr: Adam learning rate.
        betas: Adam betas.
        warmup_steps: linear learning-rate warm-up from 0.
        decay_steps: the last ``decay_steps`` steps decay the LR linearly to
            ``lr * decay_factor``; None = the last epoch.
        decay_factor: final LR relative to ``lr``.
        modules: networks trained in this stage (None = the stage's default).
        max_grad_norm: gradient clipping per optimiser (0 = off).
    """

    name: str = ""
    epochs: float = 1.0
    steps: Optional[int] = None
    k: int = 4
    batch_size: int = 4
    lr: float = 1e-3
    betas: tuple[float, float] = ADAM_BETAS
    warmup_steps: int = 100
    decay_steps: Optional[int] = None
    decay_factor: float = 0.01
    modules: Optional[list[str]] = None
    max_grad_norm: float = MAX_GRAD_NORM

    def __post_init__(self):
        if self.k < 1 or self.batch_size < 1:
            raise ValueError(f"stage {self.name}: k and batch_size must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"stage {self.name}: steps must be >= 1, got {self.steps}")
        if self.steps is None and self.epochs <= 0:
            raise ValueError(f"stage {self.name}: epochs must be > 0, got {self.epochs}")


def check_stage_names(stages: list[StageSchedule]) -> None:
    """A run's stages: at least one, each name once (checkpoints and logs find a stage by name).

    Raises:
        ValueError: no stage, or a name that appears twice.
    """
    if not stages:
        raise ValueError("stages: at least one stage is needed")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stages: each stage name may appear once, got {names}")


def check_module_names(modules: list[str], known: tuple[str, ...], where: str) -> None:
    """Refuse a stage's or a fine-tuning's ``modules`` that are not among the method's networks.

    Raises:
        ValueError: naming ``where`` (``stage full``, ``modules``), the unknown names and the known ones.
    """
    unknown = sorted(set(modules) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown module(s) {unknown}; known: {list(known)}")


@dataclass
class FinetuneConfigBase:
    """Options every method's subject fine-tuning shares (``talkinghead finetune``).

    A method's fine-tuning config subclasses this, gives ``steps`` .. ``max_grad_norm`` its
    own defaults (redeclaring a field keeps its place), and adds its own fields.

    Args:
        steps: optimiser steps on the subject's frames.
        batch_size: target frames per step (drawn from the subject's frames).
        lr: Adam learning rate.
        betas: Adam betas.
        max_grad_norm: gradient clipping (0 = off).
        perceptual: as in the trainer config.
        seed: seed of the target sampling.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto``, ``fp32`` or ``bf16``.
        use_ema: start from the EMA generator weights of a checkpoint when present.
    """

    steps: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    max_grad_norm: float
    perceptual: Literal["required", "auto", "none"] = "auto"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    use_ema: bool = True

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")


@dataclass
class DataConfig:
    """Which prepared dataset to train on (``talkinghead prepare`` output).

    Args:
        root: dataset folder.
        split: split to train on.
        num_workers: DataLoader worker processes per training process.
        holdout_fraction: the last fraction of every clip's frames is never trained on;
            the held-out reconstruction numbers are measured on it (new frames of the
            people in training). 0 trains on every frame.
        eval_split: split of the held-out numbers (None = the training split).
        num_eval_clips: clips the held-out numbers use.
        eval_k: source frames per held-out episode (spread evenly over the trained part).
        eval_targets_per_clip: held-out frames reconstructed per clip.
    """

    root: str = ""
    split: str = "train"
    num_workers: int = 2
    holdout_fraction: float = 0.1
    eval_split: Optional[str] = None
    num_eval_clips: int = 8
    eval_k: int = 4
    eval_targets_per_clip: int = 4

    def __post_init__(self):
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"data.holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        if self.num_workers < 0:
            raise ValueError("data.num_workers must be >= 0")


@dataclass
class TrainerConfig:
    """How the one trainer runs (any method).

    Args:
        seed: seed of weights initialisation and episode sampling.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        precision: ``fp32``, ``bf16`` (autocast, GPU) or ``auto`` (bf16 on CUDA, else fp32).
        channels_last: memory format of the networks and images (GPU speed).
        compile: wrap the networks in ``torch.compile``.
        grad_accumulation: micro-batches per optimiser step.
        ema_decay: decay of the exponential moving average of the generator weights (0 = off).
        ema_start_step: the EMA copies the weights until this step of a stage.
        log_every: steps between scalar logs (TensorBoard and the progress bar).
        image_every: steps between sample grids.
        eval_every: steps between held-out reconstruction numbers (0 = only at stage ends).
        checkpoint_every: steps between checkpoints (a checkpoint is also written at the
            end of every stage and when the run is interrupted).
        keep_checkpoints: how many step checkpoints to keep (stage-final ones are kept).
        perceptual: what to do when VGG19 / VGGFace weights are missing: ``required``
            refuses to start, ``auto`` uses the networks that are installed and drops the
            others' terms (the R_t term falls back to L1), ``none`` uses no perceptual network.
        init_from: a release folder, checkpoint file or run folder whose weights every network
            of the run starts from instead of its random initialisation (e.g. a meta-learning
            stage that starts from a shipped model); read with safetensors / ``weights_only``,
            the architecture must match. Used when a run starts, not on ``--resume``.
    """

    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = False
    compile: bool = False
    grad_accumulation: int = 1
    ema_decay: float = 0.999
    ema_start_step: int = 0
    log_every: int = 10
    image_every: int = 500
    eval_every: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    perceptual: Literal["required", "auto", "none"] = "required"
    init_from: Optional[str] = None

    def __post_init__(self):
        if self.grad_accumulation < 1:
            raise ValueError("trainer.grad_accumulation must be >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"trainer.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.keep_checkpoints < 1:
            raise ValueError("trainer.keep_checkpoints must be >= 1")
        for key in ("log_every", "image_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"trainer.{key} must be >= 1")
