"""The one training loop of the project: named phases, EMA, mixed precision, DDP, checkpoints.

A method describes a stage as a :class:`StagePlan` (which networks train, their
optimisers, the phases of one step, where batches come from, how to draw samples and
held-out numbers) and hands it to :meth:`Trainer.run_stage`. The trainer owns everything
that is the same for every method:

* phases (StyleGAN3 style): each phase has a loss, an optimiser and the networks it
  updates; only those networks require gradients while it runs, and only they are called
  through their DistributedDataParallel wrapper (a frozen network is called directly, so
  DDP never waits for gradients that will not come);
* gradient accumulation (``no_sync`` on all but the last micro-batch), clipping, the
  learning-rate schedule, an EMA of the generator networks;
* bf16 autocast on GPU, ``channels_last``, optional ``torch.compile``;
* checkpoints with the complete state, written by rank 0 every N steps, at the end of a
  stage and on Ctrl-C; a loss or gradient that is not finite stops the run with a clear
  message and writes nothing, so the last good checkpoint stays the latest.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from talkinghead.config.training import TrainerConfig
from talkinghead.weights.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointManager,
    capture_rng_state,
    code_version,
    restore_rng_state,
)
from talkinghead.training.distributed import DistributedContext, unwrap
from talkinghead.training.ema import ExponentialMovingAverage
from talkinghead.training.logger import TrainingLogger
from talkinghead.training.schedule import lr_factor, set_lr
from talkinghead.errors import TalkingHeadError

Batch = dict[str, torch.Tensor]
# A phase's loss: (micro-batch, networks to call) -> (loss to minimise, terms to log).
LossFn = Callable[[Batch, Mapping[str, nn.Module]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class NonFiniteLossError(TalkingHeadError, RuntimeError):
    """A loss or gradient became NaN/inf; the run stops without writing a checkpoint."""


class TrainingInterrupted(RuntimeError):
    """The run stopped early (SIGINT/SIGTERM, or ``max_steps`` reached) after writing a checkpoint.

    Attributes:
        by_signal: the signal number, or None when the step budget ran out.
    """

    def __init__(self, message: str, by_signal: int | None = None):
        super().__init__(message)
        self.by_signal = by_signal


@dataclass
class Phase:
    """One named optimisation phase of a training step.

    Args:
        name: shown in logs (``G``, ``D``, ``D_reg``).
        optimizer: key of the stage's optimiser that steps after this phase.
        modules: networks updated by this phase (they require gradients while it runs).
        loss: computes the loss of one micro-batch; see :data:`LossFn`.
        every: run on steps where ``stage_step % every == 0`` (lazy regularisation).
    """

    name: str
    optimizer: str
    modules: Sequence[str]
    loss: LossFn
    every: int = 1


@dataclass
class StagePlan:
    """Everything a stage tells the trainer.

    Args:
        name: stage name (stored in checkpoints).
        index: position in the run's stage list.
        total_steps: optimiser steps of the stage.
        steps_per_epoch: for the LR schedule's default decay window and the logs.
        trained: networks trained in this stage (wrapped in DDP / compile).
        optimizers: optimisers by name.
        base_lr: learning rate that the schedule scales.
        phases: what one step does, in order.
        batches: ``start_step -> iterator`` of the micro-batches of every step (a list of
            ``grad_accumulation`` batches per step), from ``start_step`` on.
        warmup_steps, decay_steps, decay_factor: the schedule (see ``lr_factor``; the
            defaults keep the learning rate constant).
        max_grad_norm: clip every phase's gradient norm to this (0 = no clipping; the
            norm is logged either way).
        sample: ``(networks, batch) -> rows`` of a sample grid, or None.
        sample_batch: the fixed batch the sample grid shows.
        evaluate: ``networks -> numbers`` on held-out data, or None.
        frozen_parameters: ``network -> parameter-name predicate`` of parameters that stay
            frozen although their network trains (e.g. a head the stage does not use).
        images_per_step: images a step processes over all ranks (for images/s).
        update: ``(micro-batches, stage step, scheduled lr) -> logs``: a step that is not
            gradient descent through ``phases`` (Reptile's outer update, which adapts copies
            of the networks and moves the weights itself); it runs after the phases, and
            EMA copies of the networks it changes are its own business.
    """

    name: str
    index: int
    total_steps: int
    steps_per_epoch: int
    trained: Sequence[str]
    optimizers: dict[str, torch.optim.Optimizer]
    base_lr: float
    phases: Sequence[Phase]
    batches: Callable[[int], Iterator[list[Batch]]]
    warmup_steps: int = 0
    decay_steps: int = 0
    decay_factor: float = 1.0
    max_grad_norm: float = 0.0
    sample: Callable[[Mapping[str, nn.Module], Batch], list[torch.Tensor]] | None = None
    sample_batch: Batch | None = None
    evaluate: Callable[[Mapping[str, nn.Module]], dict[str, float]] | None = None
    frozen_parameters: dict[str, Callable[[str], bool]] = field(default_factory=dict)
    images_per_step: int = 1
    update: Callable[[list[Batch], int, float], dict[str, torch.Tensor]] | None = None


def _to_device(batch: Batch, device: torch.device, channels_last: bool) -> Batch:
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if channels_last and value.ndim == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


class Trainer:
    """Runs stages for any method. Build one per run; see the module docstring.

    Args:
        method: method name stored in checkpoints (``lsr``).
        config: the run's resolved config as a plain dict (stored in checkpoints).
        trainer_config: the trainer options.
        run_dir: output folder (checkpoints, logs, samples).
        networks: every network of the method, by name (moved to the device here).
        ema_networks: names of the networks that get an EMA copy (names not among ``networks`` are skipped).
        context: the distributed context (single process by default).
        max_steps: stop (with a checkpoint) after this many steps in this invocation, e.g.
            to fit a cluster's time limit; the next ``--resume`` continues exactly.
    """

    def __init__(
        self,
        *,
        method: str,
        config: dict[str, Any],
        trainer_config: TrainerConfig,
        run_dir: str | Path,
        networks: dict[str, nn.Module],
        ema_networks: Sequence[str],
        context: DistributedContext,
        max_steps: int | None = None,
    ):
        self.method = method
        self.max_steps = max_steps
        self.steps_this_run = 0
        self.config = config
        self.options = trainer_config
        self.run_dir = Path(run_dir)
        self.context = context
        self.device = context.device
        self.use_bf16 = trainer_config.precision == "bf16" or (
            trainer_config.precision == "auto" and self.device.type == "cuda"
        )
        self.networks = {}
        for name, net in networks.items():
            net = net.to(self.device)
            if trainer_config.channels_last:
                net = net.to(memory_format=torch.channels_last)
            self.networks[name] = net
        self.ema = {
            name: ExponentialMovingAverage(
                self.networks[name], trainer_config.ema_decay, start_step=trainer_config.ema_start_step
            )
            for name in ema_networks
            if name in self.networks  # a method's optional network (e.g. a mouth generator) may not be built
        }
        self.checkpoints = CheckpointManager(self.run_dir, keep=trainer_config.keep_checkpoints)
        self.logger = TrainingLogger(self.run_dir, enabled=context.is_main)
        self.global_step = 0
        self._wrapped: dict[str, nn.Module] = {}
        self._trainable: dict[str, list[nn.Parameter]] = {}
        self._stop_signal: int | None = None

    # ----------------------------------------------------------------- helpers
    def autocast(self):
        """bf16 autocast when enabled (GPU), else a no-op context."""
        if self.use_bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def ema_networks(self) -> dict[str, nn.Module]:
        """Networks for sampling and evaluation: EMA copies where they exist, else the raw nets."""
        return {name: (self.ema[name].module if name in self.ema else net) for name, net in self.networks.items()}

    def _phase_networks(self, phase: Phase) -> dict[str, nn.Module]:
        # The phase's own networks through their DDP/compile wrapper, every other one raw.
        return {name: self._wrapped.get(name, net) if name in phase.modules else net for name, net in self.networks.items()}

    def _set_trainable(self, names: Sequence[str]) -> None:
        for name, params in self._trainable.items():
            flag = name in names
            for p in params:
                p.requires_grad_(flag)

    def state_dict(self, plan: StagePlan, stage_step: int, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict:
        """The complete training state (networks unwrapped)."""
        return {
            "version": CHECKPOINT_VERSION,
            "code_version": code_version(),
            "method": self.method,
            "config": self.config,
            "stage": plan.name,
            "stage_index": plan.index,
            "stage_step": stage_step,
            "stage_total_steps": plan.total_steps,
            "stage_complete": stage_step >= plan.total_steps,
            "global_step": self.global_step,
            "networks": {name: unwrap(net).state_dict() for name, net in self.networks.items()},
            "ema": {name: ema.state_dict() for name, ema in self.ema.items()},
            "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
            "rng": capture_rng_state(),
        }

    def load_networks(self, state: Mapping[str, Any]) -> None:
        """Restore network and EMA weights (a resumed run, or the previous stage)."""
        for name, net in self.networks.items():
            if name in state["networks"]:
                unwrap(net).load_state_dict(state["networks"][name])
        for name, ema in self.ema.items():
            if name in state.get("ema", {}):
                ema.load_state_dict(state["ema"][name])
        self.global_step = int(state.get("global_step", 0))

    def save_checkpoint(
        self, plan: StagePlan, stage_step: int, optimizers: Mapping[str, torch.optim.Optimizer], *, final: bool = False
    ) -> Path | None:
        """Rank 0 writes the state; every rank waits so no one runs ahead of a save."""
        path = None
        if self.context.is_main:
            state = self.state_dict(plan, stage_step, optimizers)
            name = f"{plan.name}-final" if final else None
            path = self.checkpoints.save(state, self.global_step, keep_forever=final, name=name)
            self.logger.info(f"checkpoint written: {path}")
        self.context.barrier()
        return path

    # ------------------------------------------------------------------- stage
    def prepare_stage(self, plan: StagePlan) -> None:
        """Set which parameters train and wrap the stage's networks (DDP, compile)."""
        self._wrapped, self._trainable = {}, {}
        for name, net in self.networks.items():
            frozen = plan.frozen_parameters.get(name)
            trainable = []
            for pname, p in net.named_parameters():
                train = name in plan.trained and not (frozen and frozen(pname))
                p.requires_grad_(train)
                if train:
                    trainable.append(p)
            if trainable:
                self._trainable[name] = trainable
        for name in plan.trained:
            wrapped: nn.Module = self.networks[name]
            if self.context.is_distributed:
                device_ids = [self.device.index] if self.device.type == "cuda" else None
                wrapped = DistributedDataParallel(wrapped, device_ids=device_ids, broadcast_buffers=False)
            if self.options.compile:
                wrapped = torch.compile(wrapped)
            self._wrapped[name] = wrapped
        for net in self.networks.values():
            net.train()

    def _install_signal_handlers(self):
        previous = {}

        def handler(signum, frame):
            self._stop_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. a test runner thread)
                pass
        return previous

    def run_stage(self, plan: StagePlan, resume: Mapping[str, Any] | None = None) -> dict[str, float]:
        """Train ``plan`` from its start, or from ``resume`` (a checkpoint of this stage).

        Returns the last logged numbers (and the final evaluation, when the stage has one).
        """
        start_step = 0
        if resume is not None:
            start_step = int(resume["stage_step"])
            for name, opt in plan.optimizers.items():
                if name in resume["optimizers"]:
                    opt.load_state_dict(resume["optimizers"][name])
            restore_rng_state(resume["rng"])
        self.prepare_stage(plan)
        if start_step >= plan.total_steps:
            return {}

        opts = self.options
        batches = plan.batches(start_step)
        last_logs: dict[str, float] = {}
        last_eval: dict[str, float] = {}
        evaluated_at = -1
        window: dict[str, list[float]] = {}
        self.logger.start_progress(plan.total_steps, initial=start_step, description=plan.name)
        previous_handlers = self._install_signal_handlers()
        if plan.evaluate is not None and opts.eval_every and start_step == 0:
            self._evaluate(plan)  # the numbers the stage starts from
        step_start = time.perf_counter()
        try:
            for stage_step in range(start_step, plan.total_steps):
                logs = self.train_step(plan, next(batches), stage_step)
                self.global_step += 1
                self.steps_this_run += 1
                done = stage_step + 1

                for key, value in logs.items():
                    window.setdefault(key, []).append(float(value))
                if done % opts.log_every == 0 or done == plan.total_steps:
                    elapsed = time.perf_counter() - step_start
                    steps_in_window = len(window.get("lr", [])) or 1
                    scalars = {key: sum(v) / len(v) for key, v in window.items()}
                    scalars = self.context.all_reduce_mean_dict(scalars)
                    scalars["time/step_s"] = elapsed / steps_in_window
                    scalars["time/images_per_s"] = plan.images_per_step * steps_in_window / max(elapsed, 1e-9)
                    if self.device.type == "cuda":
                        scalars["memory/gpu_peak_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
                    self.logger.scalars({f"{plan.name}/{k}": v for k, v in scalars.items()}, self.global_step)
                    self.logger.progress(done, _short_postfix(scalars))
                    last_logs, window, step_start = scalars, {}, time.perf_counter()
                if plan.sample is not None and plan.sample_batch is not None and (
                    done % opts.image_every == 0 or done == plan.total_steps
                ):
                    self._write_samples(plan)
                if plan.evaluate is not None and opts.eval_every and done % opts.eval_every == 0:
                    last_eval = self._evaluate(plan)
                    evaluated_at = done
                if done % opts.checkpoint_every == 0 and done < plan.total_steps:
                    self.save_checkpoint(plan, done, plan.optimizers)
                if (self._stop_signal is not None or self.out_of_steps()) and done < plan.total_steps:
                    if done % opts.checkpoint_every:
                        self.save_checkpoint(plan, done, plan.optimizers)
                    why = f"signal {self._stop_signal}" if self._stop_signal is not None else f"--max-steps {self.max_steps}"
                    raise TrainingInterrupted(
                        f"stopped by {why} at step {done} of stage {plan.name} (global step {self.global_step}); "
                        "the checkpoint is written, continue with --resume",
                        by_signal=self._stop_signal,
                    )
        finally:
            self.logger.end_progress()
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
        if plan.evaluate is not None:
            last_logs.update(last_eval if evaluated_at == plan.total_steps else self._evaluate(plan))
        self.check_ranks_in_sync(plan.name)
        self.save_checkpoint(plan, plan.total_steps, plan.optimizers, final=True)
        return last_logs

    def check_ranks_in_sync(self, where: str) -> None:
        """Raise if any process's weights differ from rank 0's (DDP keeps them bit-identical)."""
        if not self.context.is_distributed:
            return
        local = {
            name: float(sum(p.detach().double().sum() for p in unwrap(net).parameters()))
            for name, net in self.networks.items()
        }
        reference = self.context.broadcast_object(local)
        differing = sorted(name for name in local if local[name] != reference[name])
        flag = self.context.all_reduce_mean(torch.tensor(1.0 if differing else 0.0, device=self.device))
        if float(flag) > 0:
            raise RuntimeError(
                f"after {where}: the processes' weights differ from rank 0's"
                + (f" on this rank ({differing})" if differing else " on another rank")
                + "; distributed training went out of sync"
            )
        self.logger.info(
            f"ranks in sync after {where}: {self.context.world_size} processes hold identical weights "
            f"(checksums {', '.join(f'{k} {v:.6f}' for k, v in reference.items())})"
        )

    def out_of_steps(self) -> bool:
        """Whether this invocation has used its ``max_steps``."""
        return self.max_steps is not None and self.steps_this_run >= self.max_steps

    def train_step(self, plan: StagePlan, micro_batches: list[Batch], stage_step: int) -> dict[str, torch.Tensor]:
        """One optimiser step of ``plan``: LR schedule, every due phase, EMA. Returns the step's logs.

        :meth:`run_stage` calls it in its loop; benchmarks call it directly. The stage must
        have been prepared (``prepare_stage``) first.
        """
        micro_batches = [_to_device(b, self.device, self.options.channels_last) for b in micro_batches]
        lr = plan.base_lr * lr_factor(
            stage_step,
            plan.total_steps,
            warmup_steps=plan.warmup_steps,
            decay_steps=plan.decay_steps,
            decay_factor=plan.decay_factor,
        )
        for opt in plan.optimizers.values():
            set_lr(opt, lr)
        logs = {"lr": torch.tensor(lr)}
        for phase in plan.phases:
            if stage_step % phase.every:
                continue
            logs.update(self._run_phase(plan, phase, micro_batches, stage_step))
        if plan.update is not None:
            logs.update(plan.update(micro_batches, stage_step, lr))
        for name, ema in self.ema.items():
            if name in plan.trained:
                ema.update(self.networks[name], step=stage_step)
        return logs

    def _run_phase(self, plan: StagePlan, phase: Phase, micro_batches: list[Batch], stage_step: int) -> dict:
        self._set_trainable(phase.modules)
        optimizer = plan.optimizers[phase.optimizer]
        optimizer.zero_grad(set_to_none=True)
        nets = self._phase_networks(phase)
        ddp = [self._wrapped[n] for n in phase.modules if isinstance(unwrap(self._wrapped.get(n), keep_ddp=True), DistributedDataParallel)]
        terms_sum: dict[str, float] = {}
        count = len(micro_batches)
        for i, batch in enumerate(micro_batches):
            with contextlib.ExitStack() as stack:
                if i < count - 1:
                    for module in ddp:
                        stack.enter_context(unwrap(module, keep_ddp=True).no_sync())
                with self.autocast():
                    loss, terms = phase.loss(batch, nets)
                if not torch.isfinite(loss.detach()).all():
                    bad = {k: float(v.detach()) for k, v in terms.items()}
                    raise NonFiniteLossError(
                        f"stage {plan.name}, step {stage_step}, phase {phase.name}: the loss is {float(loss.detach())} "
                        f"(terms: {bad}). The run stops here and writes no checkpoint, so the latest "
                        "checkpoint is the last good state. Lower the learning rate or the loss weight of the "
                        "term that diverged, or use trainer.precision=fp32, then continue with --resume"
                    )
                (loss / count).backward()
            for key, value in terms.items():
                terms_sum[key] = terms_sum.get(key, 0.0) + float(value.detach()) / count
        params = [p for name in phase.modules for p in self._trainable.get(name, [])]
        max_norm = plan.max_grad_norm if plan.max_grad_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros(())
        if not torch.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"stage {plan.name}, step {stage_step}, phase {phase.name}: the gradient norm is {float(grad_norm)}. "
                "The run stops without writing a checkpoint; lower the learning rate, then --resume"
            )
        optimizer.step()
        logs = {f"loss/{phase.name}/{k}": torch.tensor(v) for k, v in terms_sum.items()}
        logs[f"grad_norm/{phase.name}"] = grad_norm.detach().float().cpu()
        return logs

    @torch.no_grad()
    def _write_samples(self, plan: StagePlan) -> None:
        if not self.context.is_main:
            return
        nets = self.ema_networks()
        for net in nets.values():
            net.eval()
        batch = _to_device(plan.sample_batch, self.device, self.options.channels_last)
        with self.autocast():
            rows = plan.sample(nets, batch)
        self.logger.image_rows(f"{plan.name}/samples", [r.float().cpu() for r in rows], self.global_step)
        for net in self.networks.values():
            net.train()

    @torch.no_grad()
    def _evaluate(self, plan: StagePlan) -> dict[str, float]:
        numbers: dict[str, float] = {}
        if self.context.is_main:
            nets = self.ema_networks()
            for net in nets.values():
                net.eval()
            numbers = plan.evaluate(nets)
            for net in self.networks.values():
                net.train()
            self.logger.scalars({f"{plan.name}/eval/{k}": v for k, v in numbers.items()}, self.global_step)
            self.logger.info(
                f"[{plan.name} step {self.global_step}] held-out: "
                + ", ".join(f"{k} {v:.4f}" for k, v in numbers.items())
            )
        self.context.barrier()
        return {f"eval/{k}": v for k, v in numbers.items()}

    def close(self) -> None:
        self.logger.close()


def _short_postfix(scalars: Mapping[str, float]) -> dict[str, str]:
    """The loss terms for the progress bar: ``G/l1`` -> ``l1``, at most six of them."""
    terms = {k.split("/", 2)[-1]: v for k, v in scalars.items() if k.startswith("loss/") and "score" not in k}
    return {k: f"{v:.3g}" for k, v in list(terms.items())[:6]}
