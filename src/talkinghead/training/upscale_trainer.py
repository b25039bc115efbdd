"""Training of the temporal super-resolution module (MetaPortrait §3.3), ``kind: upscale``.

One plain loop: sample adjacent-centre window pairs as random patches
(:class:`talkinghead.data.sr_windows.SRWindowDataset`), predict both centre frames, and
minimise ``l1 * L1 + perceptual * L_perc + temporal * L_temp`` where

* ``L1`` is the per-pixel distance to the 512 px ground truth;
* ``L_perc`` is the VGG19 perceptual loss when VGG19 is installed, else the offline
  image-pyramid L1 (:func:`talkinghead.losses.pyramid.pyramid_l1`);
* ``L_temp = |(y'_{t+1} - y'_t) - (y_{t+1} - y_t)|_1``: the predicted change between adjacent
  frames must match the true change, which penalises flicker (a change the input does not
  have) without needing optical flow.

Checkpoints follow the project's habits (:class:`talkinghead.weights.checkpoint.CheckpointManager`:
atomic, ``latest`` pointer, keep-last-N, ``weights_only``): network, EMA, optimiser, RNG
states and the sampling generator, so a resumed run continues bit-identically. The release
(``RUN_DIR/release``: ``config.json`` + ``upscaler.safetensors``) holds the EMA weights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from talkinghead.config import dump_yaml, to_dict
from talkinghead.config.upscale import UpscaleTrainConfig
from talkinghead.data.sr_windows import SRWindowDataset
from talkinghead.errors import TalkingHeadError
from talkinghead.losses.pyramid import pyramid_l1
from talkinghead.models.temporal_sr import UPSCALER_KIND, UPSCALER_NETWORK, TemporalSuperResolution
from talkinghead.training.ema import ExponentialMovingAverage
from talkinghead.training.logger import TrainingLogger
from talkinghead.training.schedule import lr_factor, set_lr
from talkinghead.training.standalone import StandaloneTrainer, register_standalone_trainer, release_dir
from talkinghead.training.trainer import TrainingInterrupted
from talkinghead.utils.atomic import atomic_write_text
from talkinghead.utils.device import resolve_device, torch_threads
from talkinghead.utils.run_lock import hold_run_dir
from talkinghead.weights.checkpoint import CheckpointManager, capture_rng_state, restore_rng_state
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


def train_upscale(
    config: UpscaleTrainConfig, run_dir: str | Path, *, resume: bool = False, max_steps: int | None = None
) -> dict[str, float]:
    """Train (or resume) the super-resolution module into ``run_dir``; returns the last losses.

    Args:
        config: the run.
        run_dir: output folder: checkpoints, ``config.yaml``, ``metrics.jsonl``, ``train.log``,
            and ``release/`` at the end.
        resume: continue from the latest checkpoint in ``run_dir``.
        max_steps: stop after this many steps of this invocation (a checkpoint is written and
            :class:`TrainingInterrupted` raised; continue with ``resume``).
    """
    run_dir = Path(run_dir)
    with hold_run_dir(run_dir), torch_threads(config.train.threads or None):  # one trainer per folder
        return _train(config, run_dir, resume, max_steps)


def _train(config: UpscaleTrainConfig, run_dir: Path, resume: bool, max_steps: int | None) -> dict[str, float]:
    options = config.train
    manager = CheckpointManager(run_dir, keep=options.keep_checkpoints)
    state = None
    if resume:
        state = manager.load_latest()
        if state is None:
            raise UpscaleSetupError(manager.nothing_to_resume())
        if state.get("kind") != UPSCALER_KIND or state["config"]["model"] != to_dict(config.model):
            raise UpscaleSetupError(f"{manager.latest_path()}: is not a checkpoint of this super-resolution "
                                    "architecture; resume with the run's own config.yaml or choose a new folder")
    elif manager.latest_path() is not None:
        raise UpscaleSetupError(f"{run_dir}: already holds checkpoints; pass --resume or choose a new folder")
    validate_upscale(config)
    data = SRWindowDataset(config.data_root, "train")
    device = resolve_device(options.device)
    torch.manual_seed(options.seed)
    network = TemporalSuperResolution(config.model).to(device)
    ema = ExponentialMovingAverage(network, options.ema_decay)
    optimizer = torch.optim.Adam(network.parameters(), lr=options.lr, betas=(0.9, 0.99))
    sampler = torch.Generator().manual_seed(options.seed)
    step = 0
    if state is not None:
        network.load_state_dict(state["network"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.set_state(state["sampler"])
        restore_rng_state(state["rng"])
        step = int(state["step"])
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(config))
    logger = TrainingLogger(run_dir, enabled=True, total_steps=options.steps, use_tensorboard=False)
    perceptual, perceptual_name = _perceptual(config, device, logger)
    logger.info(f"super-resolution: {sum(p.numel() for p in network.parameters()) / 1e6:.3f}M parameters, "
                f"perceptual term {perceptual_name}, {validate_upscale(config)}"
                + (f"; resuming at step {step}" if step else ""))

    def save(final: bool = False) -> None:
        manager.save({"kind": UPSCALER_KIND, "config": to_dict(config), "network": network.state_dict(),
                      "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                      "sampler": sampler.get_state(), "rng": capture_rng_state()},
                     step, keep_forever=final, name="final" if final else None)

    numbers: dict[str, float] = {}
    taken = 0
    start = time.perf_counter()
    logger.start_progress(options.steps, initial=step, description="upscale")
    try:
        while step < options.steps:
            if max_steps is not None and taken >= max_steps:
                save()
                raise TrainingInterrupted(f"stopped by --max-steps {max_steps} at step {step}; continue with --resume")
            set_lr(optimizer, options.lr * lr_factor(step, options.steps, warmup_steps=1,
                                                     decay_steps=options.steps // 2, decay_factor=0.1))
            windows, targets = data.sample(sampler, options.batch_size, options.patch_size, config.model.num_neighbors)
            b = windows.shape[0]
            windows = windows.to(device).flatten(0, 1)  # (2b, 2r+1, 3, p, p): centres t and t+1
            targets = targets.to(device)  # (b, 2, 3, 2p, 2p)
            output = network(windows).reshape(b, 2, *targets.shape[2:])  # (b, 2, 3, 2p, 2p)
            l1 = F.l1_loss(output, targets)
            perc = perceptual(output.flatten(0, 1), targets.flatten(0, 1))
            temporal = F.l1_loss(output[:, 1] - output[:, 0], targets[:, 1] - targets[:, 0])
            loss = options.l1 * l1 + options.perceptual * perc + options.temporal * temporal
            if not torch.isfinite(loss):
                raise UpscaleSetupError(f"step {step}: the loss is not finite ({loss.item()}); lower train.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update(network, step)
            step += 1
            taken += 1
            numbers = {"loss/total": loss.item(), "loss/l1": l1.item(), "loss/perceptual": perc.item(),
                       "loss/temporal": temporal.item()}
            if step % options.log_every == 0 or step == options.steps:
                numbers["time/s_per_step"] = (time.perf_counter() - start) / taken
                logger.scalars(numbers, step)
                logger.progress(step, {k.split("/")[1]: f"{v:.4f}" for k, v in numbers.items() if k.startswith("loss")})
            if step % options.checkpoint_every == 0 and step < options.steps:
                save()
        save(final=True)
    finally:
        logger.end_progress()
    info: dict[str, Any] = {"kind": UPSCALER_KIND, "model": to_dict(config.model), "global_step": step,
                            "weights": "exponential moving average", "perceptual": perceptual_name,
                            "data": {"root": config.data_root, **{k: data.index[k] for k in ("degradation", "settings")}}}
    save_release(release_dir(run_dir), info, {UPSCALER_NETWORK: ema.module}, overwrite=True)
    logger.info(f"release written to {release_dir(run_dir)}")
    logger.close()
    return numbers


register_standalone_trainer(UPSCALER_KIND, StandaloneTrainer(train=train_upscale, validate=validate_upscale))
