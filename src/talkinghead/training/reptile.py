"""Reptile (Nichol et al. 2018), the meta-learning of MetaPortrait §3.2, for any method's networks.

A task is one identity's support sample. For every task the networks being meta-trained
are copied, the copies take ``inner_steps`` optimiser steps of the task's loss (the
initialisation itself is never touched), and the difference theta~_j - theta is kept. The
outer step then moves the initialisation by ``epsilon`` of the mean difference over the
step's tasks and over all processes (each process adapts its own tasks; the differences
are averaged with one all-reduce, so every process makes the same move):

    theta <- theta + epsilon * mean_j (theta~_j - theta)

The inner optimiser is created anew for every task, so nothing of the inner loop outlives
it: a checkpoint of a meta stage holds the initialisation, the step and the RNG only.
Only parameters are meta-learned; buffers keep the initialisation's values.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from talkinghead.training.distributed import DistributedContext, unwrap
from talkinghead.training.trainer import Batch, LossFn, NonFiniteLossError, Trainer

# Per network name, one tensor per parameter (in ``parameters()`` order).
Deltas = dict[str, list[torch.Tensor]]
# (the copies being adapted, by name; the learning rate) -> the task's inner optimiser
InnerOptimizer = Callable[[Mapping[str, nn.Module], float], torch.optim.Optimizer]


def adapt(
    networks: Mapping[str, nn.Module],
    names: Sequence[str],
    loss: LossFn,
    batch: Batch,
    *,
    steps: int,
    lr: float,
    optimizer: InnerOptimizer,
    max_grad_norm: float = 0.0,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[dict[str, nn.Module], list[float]]:
    """The inner loop: ``steps`` optimiser steps of ``loss`` on copies of the networks ``names``.

    Args:
        networks: every network of the method (those not in ``names`` are used as they are
            and must not require gradients).
        names: the networks adapted (copied; the originals keep their weights).
        loss: ``(batch, networks) -> (loss, terms)``, as a trainer phase's.
        batch: the task's support sample(s), already on the device.
        steps: inner steps (MetaPortrait: 2).
        lr: the inner learning rate (MetaPortrait: Adam at 2e-4).
        optimizer: builds the task's optimiser over the copies.
        max_grad_norm: clip the inner gradient norm (0 = off).
        autocast: mixed-precision context of the forward pass.

    Returns:
        (the adapted copies by name, the loss before each inner step).
    """
    copies = {name: copy.deepcopy(unwrap(networks[name])).train().requires_grad_(True) for name in names}
    nets = {**networks, **copies}
    opt = optimizer(copies, lr)
    params = [p for net in copies.values() for p in net.parameters()]
    losses = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        with autocast():
            value, terms = loss(batch, nets)
        if not torch.isfinite(value.detach()).all():
            bad = {k: float(v.detach()) for k, v in terms.items()}
            raise NonFiniteLossError(
                f"Reptile inner step {step}: the loss is {float(value.detach())} (terms: {bad}); lower the stage's "
                "lr or epsilon, then continue with --resume (nothing of this step was written)"
            )
        value.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        losses.append(float(value.detach()))
    return copies, losses


@torch.no_grad()
def parameter_deltas(initial: Mapping[str, nn.Module], adapted: Mapping[str, nn.Module]) -> Deltas:
    """theta~ - theta for every parameter of the networks in ``adapted``."""
    return {
        name: [a.detach() - p.detach() for p, a in zip(unwrap(initial[name]).parameters(), net.parameters())]
        for name, net in adapted.items()
    }


@torch.no_grad()
def mean_deltas(per_task: Sequence[Deltas], context: DistributedContext | None = None) -> Deltas:
    """The mean of the tasks' differences, over this process's tasks and then over all processes.

    Every process must hold the same number of tasks (the trainer's batch split makes sure),
    so the mean of the processes' means is the mean over every task. One all-reduce of the
    differences flattened into a single vector.
    """
    names = list(per_task[0])
    local = [torch.stack([task[n][i] for task in per_task]).mean(0) for n in names for i in range(len(per_task[0][n]))]
    if context is not None and context.is_distributed:
        shapes = [t.shape for t in local]
        flat = context.all_reduce_mean(torch.cat([t.reshape(-1) for t in local]))
        local = [t.reshape(shape) for t, shape in zip(torch.split(flat, [s.numel() for s in shapes]), shapes)]
    out: Deltas = {}
    at = 0
    for n in names:
        count = len(per_task[0][n])
        out[n] = local[at:at + count]
        at += count
    return out


@torch.no_grad()
def outer_step(networks: Mapping[str, nn.Module], deltas: Deltas, epsilon: float) -> None:
    """Reptile's outer update in place: theta <- theta + epsilon * delta for every parameter."""
    for name, values in deltas.items():
        params = list(unwrap(networks[name]).parameters())
        if len(params) != len(values):
            raise ValueError(f"outer step: {name} has {len(params)} parameters, {len(values)} differences were given")
        for param, delta in zip(params, values):
            param.add_(delta.to(param.dtype), alpha=epsilon)


def split_tasks(micro_batches: Sequence[Batch]) -> list[Batch]:
    """One task per episode: every row of every micro-batch as a batch of one."""
    tasks = []
    for batch in micro_batches:
        size = len(next(iter(batch.values())))
        tasks += [{key: value[i:i + 1] for key, value in batch.items()} for i in range(size)]
    return tasks


class ReptileUpdate:
    """A meta stage's step for :attr:`StagePlan.update`: adapt every task, average, move the initialisation.

    The EMA copies of the meta-trained networks are set to the new initialisation after
    every step (Reptile's update is itself an average over tasks), so a release or a
    fine-tuning run that reads the EMA weights starts from the meta-learned initialisation.

    Args:
        trainer: the run's trainer (networks, device, autocast, distributed context, EMA).
        names: the networks meta-trained.
        loss: the task loss (a phase's ``(batch, networks) -> (loss, terms)``).
        inner_steps: optimiser steps per task.
        epsilon: the outer step, in (0, 1].
        optimizer: builds a task's inner optimiser over its copies.
        max_grad_norm: inner gradient clipping (0 = off).
    """

    def __init__(self, trainer: Trainer, names: Sequence[str], loss: LossFn, *, inner_steps: int, epsilon: float,
                 optimizer: InnerOptimizer, max_grad_norm: float = 0.0):
        if not names:
            raise ValueError("a meta stage needs at least one network to meta-train")
        self.trainer = trainer
        self.names = list(names)
        self.loss = loss
        self.inner_steps = inner_steps
        self.epsilon = epsilon
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm

    def __call__(self, micro_batches: list[Batch], stage_step: int, lr: float) -> dict[str, torch.Tensor]:
        nets = self.trainer.networks
        per_task, first, last = [], [], []
        for task in split_tasks(micro_batches):
            adapted, losses = adapt(
                nets, self.names, self.loss, task, steps=self.inner_steps, lr=lr, optimizer=self.optimizer,
                max_grad_norm=self.max_grad_norm, autocast=self.trainer.autocast,
            )
            per_task.append(parameter_deltas(nets, adapted))
            first.append(losses[0])
            last.append(losses[-1])
        deltas = mean_deltas(per_task, self.trainer.context)
        outer_step(nets, deltas, self.epsilon)
        for name in self.names:
            if name in self.trainer.ema:
                self.trainer.ema[name].module.load_state_dict(unwrap(nets[name]).state_dict())
        norm = torch.sqrt(sum((d.double() ** 2).sum() for values in deltas.values() for d in values))
        return {
            "loss/inner/first": torch.tensor(sum(first) / len(first)),
            "loss/inner/last": torch.tensor(sum(last) / len(last)),
            "reptile/delta_norm": norm.float().cpu(),
        }
