"""Training of the temporal super-resolution module (MetaPortrait §3.3), ``kind: upscale``.

One stage of the project's one :class:`~talkinghead.training.trainer.Trainer`: sample
adjacent-centre window pairs as random patches (:class:`talkinghead.data.sr_windows.SRWindowDataset`),
predict both centre frames, and minimise ``l1 * L1 + perceptual * L_perc + temporal * L_temp`` where

* ``L1`` is the per-pixel distance to the 512 px ground truth;
* ``L_perc`` is the VGG19 perceptual loss when VGG19 is installed, else the offline
  image-pyramid L1 (:func:`talkinghead.losses.pyramid.pyramid_l1`);
* ``L_temp = |(y'_{t+1} - y'_t) - (y_{t+1} - y_t)|_1``: the predicted change between adjacent
  frames must match the true change, which penalises flicker (a change the input does not
  have) without needing optical flow.

Checkpoints, resume, ``--max-steps``, Ctrl-C and the non-finite-loss stop are the trainer's
(:func:`talkinghead.training.run.resume_state` opens the run folder as for every method);
each step's patches come from a generator seeded by the step, so a resumed run continues
bit-identically. The release (``RUN_DIR/release``: ``config.json`` + ``upscaler.safetensors``)
holds the EMA weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from talkinghead.config import to_dict
from talkinghead.config.training import TrainerConfig
from talkinghead.config.upscale import UpscaleTrainConfig, UpscaleTrainOptions
from talkinghead.data.sr_windows import SRWindowDataset
from talkinghead.errors import TalkingHeadError
from talkinghead.losses.pyramid import pyramid_l1
from talkinghead.models.temporal_sr import UPSCALER_KIND, UPSCALER_NETWORK, TemporalSuperResolution
from talkinghead.training.distributed import DistributedContext
from talkinghead.training.logger import TrainingLogger
from talkinghead.training.run import resume_state, start_run
from talkinghead.training.standalone import StandaloneTrainer, register_standalone_trainer, release_dir
from talkinghead.training.trainer import Batch, LossFn, Phase, StagePlan, Trainer
from talkinghead.utils.device import torch_threads
from talkinghead.utils.modules import parameter_counts
from talkinghead.utils.run_lock import hold_run_dir
from talkinghead.weights.release import save_release


class UpscaleSetupError(TalkingHeadError, ValueError):
    """A super-resolution run that cannot start (data, config or run folder)."""


def _perceptual(config: UpscaleTrainConfig, device: torch.device, logger: TrainingLogger):
    """The perceptual distance ``f(output, target)`` on [0, 1] images, and its name."""
    mode = config.train.perceptual_network
    if mode != "pyramid":
        from talkinghead.losses.factory import build_perceptual_networks
        from talkinghead.losses.perceptual import PerceptualLoss

        nets = build_perceptual_networks({"vgg19"}, "required" if mode == "vgg19" else "auto",
                                         device=device, option="train.perceptual_network")
        if nets.has("vgg19"):
            loss = PerceptualLoss(nets.vgg19)
            return (lambda out, tgt: loss(out * 2 - 1, tgt * 2 - 1)), "vgg19"
        logger.info(nets.message.rstrip(". ") + ". Using the offline image-pyramid L1 as the perceptual term.")
    return pyramid_l1, "pyramid"


def validate_upscale(config: UpscaleTrainConfig) -> str:
    """Check data and config before compute; returns the plan as one line."""
    if not config.data_root:
        raise UpscaleSetupError("data_root is not set: pass data_root=PATH (a folder written by "
                                "`talkinghead prepare-sr`)")
    data = SRWindowDataset(config.data_root, "train")
    side = min(a.shape[1] for a in data.lr)
    if config.train.patch_size > side:
        raise UpscaleSetupError(f"train.patch_size {config.train.patch_size} is larger than the data's "
                                f"{side} px input frames; lower it")
    return (f"{len(data)} training segments in {config.data_root}; window {config.model.window} frames; "
            f"{config.train.steps} steps of {config.train.batch_size} pairs of {config.train.patch_size} px patches")


def _trainer_options(options: UpscaleTrainOptions) -> TrainerConfig:
    """The one trainer's options for a super-resolution run: fp32, EMA from the first step, no sample grids."""
    return TrainerConfig(seed=options.seed, device=options.device, precision="fp32", ema_decay=options.ema_decay,
                         log_every=options.log_every, checkpoint_every=options.checkpoint_every,
                         keep_checkpoints=options.keep_checkpoints, perceptual="none")


def _check_same_architecture(config: UpscaleTrainConfig) -> Callable[[Mapping[str, Any], str], None]:
    """Refuse to resume from a checkpoint of another program or another super-resolution architecture."""

    def check(state: Mapping[str, Any], path: str) -> None:
        if state.get("method") != UPSCALER_KIND or state["config"]["model"] != to_dict(config.model):
            raise UpscaleSetupError(f"{path}: is not a checkpoint of this super-resolution architecture; "
                                    "resume with the run's own config.yaml or choose a new folder")

    return check


def _batches(data: SRWindowDataset, config: UpscaleTrainConfig) -> Callable[[int], Iterator[list[Batch]]]:
    """``start_step -> iterator`` of each step's window pairs.

    Step ``s`` draws its patches from a generator seeded by ``(seed, s)``, so a resumed run
    draws exactly what an uninterrupted one would.
    """
    options = config.train

    def batches(start_step: int) -> Iterator[list[Batch]]:
        for step in itertools.count(start_step):
            seed = int(np.random.SeedSequence([options.seed, step]).generate_state(1)[0])
            windows, targets = data.sample(torch.Generator().manual_seed(seed), options.batch_size,
                                           options.patch_size, config.model.num_neighbors)
            # windows (b, 2, 2r+1, 3, p, p): centres t and t+1; targets (b, 2, 3, 2p, 2p)
            yield [{"windows": windows, "targets": targets}]

    return batches


def _loss(options: UpscaleTrainOptions, perceptual: Callable) -> LossFn:
    """``l1 * L1 + perceptual * L_perc + temporal * L_temp`` of one batch of window pairs (module docstring)."""

    def loss(batch: Batch, networks: Mapping[str, torch.nn.Module]):
        windows, targets = batch["windows"], batch["targets"]
        b = windows.shape[0]
        output = networks[UPSCALER_NETWORK](windows.flatten(0, 1)).reshape(b, 2, *targets.shape[2:])  # (b, 2, 3, 2p, 2p)
        l1 = F.l1_loss(output, targets)
        perc = perceptual(output.flatten(0, 1), targets.flatten(0, 1))
        temporal = F.l1_loss(output[:, 1] - output[:, 0], targets[:, 1] - targets[:, 0])
        total = options.l1 * l1 + options.perceptual * perc + options.temporal * temporal
        return total, {"total": total, "l1": l1, "perceptual": perc, "temporal": temporal}

    return loss


def _plan(trainer: Trainer, config: UpscaleTrainConfig, data: SRWindowDataset, perceptual: Callable) -> StagePlan:
    """The single stage: Adam on the upscaler, the learning rate a tenth after half the steps."""
    options = config.train
    network = trainer.networks[UPSCALER_NETWORK]
    return StagePlan(
        name=UPSCALER_KIND, index=0, total_steps=options.steps, steps_per_epoch=options.steps,
        trained=[UPSCALER_NETWORK],
        optimizers={UPSCALER_NETWORK: torch.optim.Adam(network.parameters(), lr=options.lr, betas=(0.9, 0.99))},
        base_lr=options.lr, phases=[Phase("SR", UPSCALER_NETWORK, [UPSCALER_NETWORK], _loss(options, perceptual))],
        batches=_batches(data, config), warmup_steps=1, decay_steps=options.steps // 2, decay_factor=0.1,
        images_per_step=2 * options.batch_size,
    )


def train_upscale(
    config: UpscaleTrainConfig, run_dir: str | Path, *, resume: bool = False, max_steps: int | None = None
) -> dict[str, float]:
    """Train (or resume) the super-resolution module into ``run_dir`` with the one trainer; returns the last losses.

    Args:
        config: the run.
        run_dir: output folder: checkpoints, ``config.yaml``, logs, and ``release/`` at the end.
        resume: continue from the latest checkpoint in ``run_dir``.
        max_steps: stop after this many steps of this invocation (a checkpoint is written and
            :class:`TrainingInterrupted` raised; continue with ``resume``).
    """
    run_dir = Path(run_dir)
    with hold_run_dir(run_dir), torch_threads(config.train.threads or None):  # one trainer per folder
        state = resume_state(run_dir, config.train.keep_checkpoints, resume=resume,
                             check=_check_same_architecture(config))
        plan_line = validate_upscale(config)
        data = SRWindowDataset(config.data_root, "train")
        context = DistributedContext(env={}).init(config.train.device)  # one process, as the data is small
        torch.manual_seed(config.train.seed)
        network = TemporalSuperResolution(config.model)
        trainer = Trainer(method=UPSCALER_KIND, config=to_dict(config), trainer_config=_trainer_options(config.train),
                          run_dir=run_dir, networks={UPSCALER_NETWORK: network}, ema_networks=[UPSCALER_NETWORK],
                          context=context, max_steps=max_steps)
        try:
            start_run(trainer, config, state)
            perceptual, perceptual_name = _perceptual(config, trainer.device, trainer.logger)
            trainer.logger.info(f"super-resolution: {parameter_counts(trainer.networks)[UPSCALER_NETWORK] / 1e6:.3f}M "
                                f"parameters, perceptual term {perceptual_name}, {plan_line}")
            numbers = trainer.run_stage(_plan(trainer, config, data, perceptual), state)
            info: dict[str, Any] = {
                "kind": UPSCALER_KIND, "model": to_dict(config.model), "global_step": trainer.global_step,
                "weights": "exponential moving average", "perceptual": perceptual_name,
                "data": {"root": config.data_root, **{k: data.index[k] for k in ("degradation", "settings")}},
            }
            save_release(release_dir(run_dir), info, {UPSCALER_NETWORK: trainer.ema[UPSCALER_NETWORK].module},
                         overwrite=True)
            trainer.logger.info(f"release written to {release_dir(run_dir)}")
            return numbers
        finally:
            trainer.close()
            context.shutdown()


register_standalone_trainer(UPSCALER_KIND, StandaloneTrainer(train=train_upscale, validate=validate_upscale))
