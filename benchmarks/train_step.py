"""Images/s and peak memory of one full-pipeline LSR training step (Eq. 4: G, D and R1 phases).

    python benchmarks/train_step.py                          # tiny and paper presets, fp32
    python benchmarks/train_step.py --preset tiny --steps 10
    python benchmarks/train_step.py --precision bf16 --channels-last   # on a GPU

The step is the trainer's own ``Trainer.train_step`` on the ``full`` stage's phases, with
every loss term the preset uses. R1 is lazy (every ``r1_every`` steps), so the figure is
the amortised cost: a step without R1 plus 1/r1_every of R1's extra time. The episodes are random tensors of the
right shapes: data loading is measured by ``benchmarks/rasterize.py``, not here. The
perceptual networks are used when installed (``talkinghead weights list``); the printed
line says which terms ran. Peak memory is the GPU's max allocated memory, or on CPU the
process's peak resident set size (which includes the Python runtime).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from talkinghead.config import load_config
from talkinghead.models.lsr import build_networks
from talkinghead.training.distributed import DistributedContext
from talkinghead.training.lsr_objective import LSRObjective, needed_networks
from talkinghead.training.lsr_phases import FROZEN, FullObjectivePhases
from talkinghead.losses.factory import build_perceptual_networks
from talkinghead.training.trainer import StagePlan, Trainer
from talkinghead.utils.modules import parameter_counts

REPO = Path(__file__).resolve().parents[1]
PRESETS = {"tiny": REPO / "configs/lsr/tiny.yaml", "paper": REPO / "configs/lsr/vox224.yaml"}


def synthetic_batch(config, k: int, batch: int) -> dict[str, torch.Tensor]:
    size, lc = config.model.image_size, config.model.landmark_channels
    return {
        "source_images": torch.rand(batch, k, 3, size, size) * 2 - 1,
        "source_landmarks": torch.rand(batch, k, lc, size, size) * 2 - 1,
        "target_image": torch.rand(batch, 3, size, size) * 2 - 1,
        "target_landmarks": torch.rand(batch, lc, size, size) * 2 - 1,
    }


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def bench(preset: str, precision: str, channels_last: bool, compile_: bool, steps: int, batch: int | None) -> None:
    overrides = [f"trainer.precision={precision}", f"trainer.channels_last={str(channels_last).lower()}",
                 f"trainer.compile={str(compile_).lower()}", "trainer.perceptual=auto"]
    config = load_config(PRESETS[preset], overrides, kind="lsr")
    stage = next(s for s in config.stages if s.name == "full")
    batch = batch or stage.batch_size
    context = DistributedContext(env={}).init(config.trainer.device)
    perceptual = build_perceptual_networks(needed_networks(stage.loss_weights), "auto")
    torch.manual_seed(0)
    networks = build_networks(config.model)
    counts = parameter_counts(networks)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(method="lsr", config={}, trainer_config=config.trainer, run_dir=run_dir,
                          networks=networks, ema_networks=["layout_encoder", "style_encoder", "layout_generator",
                                                           "image_generator"], context=context)
        objective = LSRObjective(stage.loss_weights, perceptual).to(trainer.device)
        full = FullObjectivePhases(objective, config.model, stage.modules, stage.r1_gamma, stage.r1_every)
        plan = StagePlan(name="bench", index=0, total_steps=10**6, steps_per_epoch=10**6, trained=full.trained,
                         optimizers=full.optimizers(trainer, stage.lr, stage.betas), base_lr=stage.lr,
                         phases=full.phases(),
                         batches=lambda start: iter(()), max_grad_norm=stage.max_grad_norm,
                         frozen_parameters=FROZEN)
        trainer.prepare_stage(plan)
        data = [synthetic_batch(config, stage.k, batch)]
        trainer.train_step(plan, data, 1)  # warm-up (and compilation), not an R1 step
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(trainer.device)
        # Steps 1..steps skip the lazy R1 (when r1_every > steps); step 0 adds it. The figure
        # reported is the amortised cost: main step + R1 extra / r1_every.
        start = time.perf_counter()
        for step in range(1, steps + 1):
            trainer.train_step(plan, data, step if step % stage.r1_every else step + 1)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        main_step = (time.perf_counter() - start) / steps
        start = time.perf_counter()
        trainer.train_step(plan, data, 0)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        r1_extra = max(0.0, time.perf_counter() - start - main_step)
        seconds = main_step + r1_extra / stage.r1_every
        trainer.close()
    terms = [t for t in ("l1", "vgg19", "vggface", "identity", "gan", "latent_l2")
             if getattr(stage.loss_weights, t) > 0 and (t in ("l1", "gan", "latent_l2") or getattr(objective, t))]
    print(
        f"{preset:5s} {config.model.image_size}px K={stage.k} batch {batch} {trainer.device.type} "
        f"{'bf16' if trainer.use_bf16 else 'fp32'}{' channels_last' if channels_last else ''}"
        f"{' compile' if compile_ else ''}: {seconds * 1000:.0f} ms/step, {batch / seconds:.1f} images/s, "
        f"peak memory {peak_memory_gib(trainer.device):.2f} GiB "
        f"(params {sum(counts.values()) / 1e6:.1f}M; terms: {', '.join(terms)}; R1 every {stage.r1_every})"
    )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=[*PRESETS, "all"], default="all")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=3, help="measured steps without R1 (plus one with it)")
    parser.add_argument("--batch", type=int, help="episodes per step (default: the preset's)")
    args = parser.parse_args()
    presets = list(PRESETS) if args.preset == "all" else [args.preset]
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")
    for preset in presets:
        for precision in precisions:
            bench(preset, precision, args.channels_last, args.compile, args.steps, args.batch)


if __name__ == "__main__":
    main()
