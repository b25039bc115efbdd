"""Subject fine-tuning (LSR §3.5): personalise a meta-trained model to one new person.

The person's K images are prepared like training data (same detector, crop and landmark
images); their layout and style latents are computed once with the frozen encoders; then
G_l, G_s and D are tuned by reconstructing those K images with the objective of Eq. 4, in
the same trainer and with the same phases as the full training stage. The result is a
release folder: the tuned networks, the subject's latents (``subject.safetensors``) and
``config.json`` recording what was done.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talkinghead.config import to_dict
from talkinghead.config.lsr import MODULE_NAMES, FinetuneConfig, TrainerConfig
from talkinghead.data.subject import SubjectFrames, prepare_subject
from talkinghead.evaluation.holdout import l1, psnr
from talkinghead.losses.factory import build_perceptual_networks
from talkinghead.models.lsr import METHOD, encode_latent
from talkinghead.models.lsr_pretrained import PretrainedLSR, load_lsr_weights
from talkinghead.training.distributed import DistributedContext, seed_everything
from talkinghead.training.lsr_objective import LSRObjective, needed_networks
from talkinghead.training.lsr_stages import FROZEN, FullObjectivePhases, TrainingSetupError
from talkinghead.training.release import save_release
from talkinghead.training.trainer import StagePlan, Trainer
from talkinghead.utils.output_guard import (
    check_output_location,
    check_replaceable_folder,
    check_writable,
    output_errors,
)


@dataclass
class FinetuneResult:
    """What a fine-tuning run did.

    Attributes:
        output: the release folder written.
        num_images: subject frames tuned on.
        steps: optimiser steps.
        seconds_per_step: mean wall time of one step (all phases).
        before: reconstruction of the subject frames by the meta-trained model (l1, psnr).
        after: the same after fine-tuning.
    """

    output: Path
    num_images: int
    steps: int
    seconds_per_step: float
    before: dict[str, float]
    after: dict[str, float]

    def format(self) -> str:
        return (
            f"fine-tuned on {self.num_images} image(s): {self.steps} steps, {self.seconds_per_step:.3f} s/step\n"
            f"  reconstruction of the subject images: L1 {self.before['l1']:.4f} -> {self.after['l1']:.4f}, "
            f"PSNR {self.before['psnr']:.2f} -> {self.after['psnr']:.2f} dB\n"
            f"  written to {self.output}"
        )


def _subject_batches(subject: SubjectFrames, z_layout, z_style, config: FinetuneConfig, total_steps: int):
    """``start_step -> iterator``: each step draws ``batch_size`` of the K frames, seeded by step."""

    def batch_for(step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([config.seed, step])
        n = len(subject)
        picks = rng.choice(n, size=config.batch_size, replace=config.batch_size > n)
        idx = torch.from_numpy(picks)
        return {
            "target_image": subject.images[idx],
            "target_landmarks": subject.landmarks[idx],
            "z_layout": z_layout.expand(len(idx), -1).clone(),
            "z_style": z_style.expand(len(idx), -1).clone(),
        }

    def stream(start_step: int):
        for step in range(start_step, total_steps):
            yield [batch_for(step)]

    return stream, batch_for


@dataclass
class FinetunedNetworks:
    """The outcome of :func:`finetune_networks`: tuned networks and the subject's latents."""

    networks: dict[str, torch.nn.Module]
    z_layout: torch.Tensor
    z_style: torch.Tensor
    seconds_per_step: float
    before: dict[str, float]
    after: dict[str, float]
    extra_files: dict[str, str]


def finetune_networks(pretrained: PretrainedLSR, subject: SubjectFrames, config: FinetuneConfig) -> FinetunedNetworks:
    """Fine-tune ``pretrained`` on prepared subject frames (in memory); nothing is written.

    The latents are computed once with the frozen encoders (§3.5); then the modules in
    ``config.modules`` are tuned with the full stage's phases in the common trainer.
    """
    model = pretrained.config
    names = [n for n in MODULE_NAMES if n in pretrained.state_dicts]
    if "discriminator" in config.modules and "discriminator" not in names:
        raise TrainingSetupError(
            f"{pretrained.source}: has no discriminator weights, which fine-tuning with the adversarial loss needs; "
            "use a training checkpoint or a full release, or set modules without discriminator and loss_weights.gan=0"
        )
    perceptual = build_perceptual_networks(needed_networks(config.loss_weights), config.perceptual, option="perceptual")
    context = DistributedContext().init(config.device)
    seed_everything(config.seed, 0)
    trainer_config = TrainerConfig(
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
    with tempfile.TemporaryDirectory(prefix="talkinghead-finetune-") as run_dir:
        trainer = Trainer(
            method=METHOD,
            config={"method": METHOD, "model": to_dict(model), "finetune": to_dict(config)},
            trainer_config=trainer_config,
            run_dir=run_dir,
            networks=pretrained.build(names),
            ema_networks=[],
            context=context,
        )
        try:
            if perceptual.message:
                trainer.logger.info(perceptual.message)
            device = trainer.device
            images, landmarks = subject.images.to(device), subject.landmarks.to(device)
            with torch.no_grad():  # the latents are computed once (§3.5)
                z_layout = encode_latent(trainer.networks["layout_encoder"], images[None], landmarks[None]).cpu()
                z_style = encode_latent(trainer.networks["style_encoder"], images[None], landmarks[None]).cpu()
            objective = LSRObjective(config.loss_weights, perceptual).to(device)
            tuned = [m for m in config.modules if m != "layout_encoder" and m != "style_encoder"]
            full = FullObjectivePhases(objective, model, tuned, config.r1_gamma, config.r1_every)
            stream, _ = _subject_batches(subject, z_layout, z_style, config, config.steps)

            @torch.no_grad()
            def evaluate(nets) -> dict[str, float]:
                batch = {
                    "target_image": images,
                    "target_landmarks": landmarks,
                    "z_layout": z_layout.to(device).expand(len(images), -1),
                    "z_style": z_style.to(device).expand(len(images), -1),
                }
                with trainer.autocast():
                    out = full.generate(nets, batch)[0].image
                return {"l1": float(l1(out, images).mean()), "psnr": float(psnr(out, images).mean())}

            for net in trainer.networks.values():
                net.eval()
            before = evaluate(trainer.networks)
            plan = StagePlan(
                name="finetune",
                index=0,
                total_steps=config.steps,
                steps_per_epoch=config.steps,
                trained=full.trained,
                optimizers=full.optimizers(trainer, config.lr, config.betas),
                base_lr=config.lr,
                warmup_steps=0,
                decay_steps=0,
                decay_factor=1.0,
                phases=full.phases(),
                batches=stream,
                max_grad_norm=config.max_grad_norm,
                frozen_parameters=FROZEN,
                images_per_step=config.batch_size,
            )
            start = time.perf_counter()
            trainer.run_stage(plan)
            seconds_per_step = (time.perf_counter() - start) / config.steps
            for net in trainer.networks.values():
                net.eval()
            after = evaluate(trainer.networks)
            metrics = Path(run_dir) / "metrics.jsonl"
            extra = {"finetune_metrics.jsonl": metrics.read_text()} if metrics.exists() else {}
        finally:
            trainer.close()
            context.shutdown()
    networks = {name: trainer.networks[name] for name in names}
    return FinetunedNetworks(networks, z_layout, z_style, seconds_per_step, before, after, extra)


def finetune_lsr(
    checkpoint: str | Path,
    inputs: list[str | Path],
    output: str | Path,
    config: FinetuneConfig,
    *,
    frames_per_video: int = 8,
    overwrite: bool = False,
) -> FinetuneResult:
    """Fine-tune the model in ``checkpoint`` on the person in ``inputs``; write ``output``.

    Args:
        checkpoint: a release folder, a training checkpoint or a run folder.
        inputs: the subject's images / videos / folders of them.
        output: the release folder to write (refused if it exists, unless ``overwrite``).
        config: steps, learning rate, what trains, loss weights.
        frames_per_video: frames sampled from each subject video.
        overwrite: replace an existing output folder that an earlier fine-tuning wrote
            (its marker file lists every file in it); any other folder is refused.
    """
    output = Path(output)
    check_output_location(output, {"checkpoint": checkpoint, "subject input": list(inputs)})
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise TrainingSetupError(f"{output}: already exists; pass --overwrite to replace it or choose another folder")
    if overwrite:
        check_replaceable_folder(output, "finetune")
    check_writable(output)
    pretrained = load_lsr_weights(checkpoint, use_ema=config.use_ema)
    model = pretrained.config
    subject = prepare_subject(
        inputs,
        size=model.image_size,
        landmark_style=model.landmark_style,
        frames_per_video=frames_per_video,
        prepare=pretrained.prepare_config(),
    )
    tuned = finetune_networks(pretrained, subject, config)
    info = {
        "method": METHOD,
        "model": to_dict(model),
        "finetune": to_dict(config),
        "base_checkpoint": str(pretrained.source),
        "base_info": pretrained.info,
        "prepare": pretrained.info.get("prepare"),
        "subject_sources": subject.sources,
        "seconds_per_step": tuned.seconds_per_step,
        "reconstruction_before": tuned.before,
        "reconstruction_after": tuned.after,
    }
    modules: dict = dict(tuned.networks)
    modules["subject"] = {"z_layout": tuned.z_layout, "z_style": tuned.z_style}
    with output_errors(output):
        save_release(output, info, modules, tuned.extra_files or None, overwrite=overwrite, command="finetune")
    return FinetuneResult(output, len(subject), config.steps, tuned.seconds_per_step, tuned.before, tuned.after)
