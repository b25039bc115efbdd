"""Learning-rate schedule: linear warm-up, constant, linear decay at the end (LSR A.1)."""

from __future__ import annotations

import torch


def lr_factor(step: int, total_steps: int, *, warmup_steps: int, decay_steps: int, decay_factor: float) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    The factor rises linearly over the first ``warmup_steps`` steps, from
    ``1 / warmup_steps`` at step 0 to 1 at step ``warmup_steps - 1``; stays at 1; then over
    the last ``decay_steps`` steps falls linearly to exactly ``decay_factor`` at the final
    step ``total_steps - 1`` (LSR: divided by 100 during the last epoch). Where warm-up and
    decay overlap (very short runs) the smaller factor wins; steps past the end keep
    ``decay_factor``.

    Args:
        step: the step about to be taken, from 0.
        total_steps: the length of the stage in steps.
        warmup_steps: length of the warm-up (0 = none).
        decay_steps: length of the final decay (0 = none).
        decay_factor: the factor at the final step.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if warmup_steps < 0 or decay_steps < 0:
        raise ValueError(f"warmup_steps and decay_steps must be >= 0, got {warmup_steps}, {decay_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    factor = 1.0
    if step < warmup_steps:
        factor = (step + 1) / warmup_steps
    if decay_steps > 0:
        remaining = total_steps - 1 - step  # steps left after this one
        if remaining <= 0:
            return float(decay_factor)
        if remaining < decay_steps:
            # remaining = decay_steps - 1 ... 0 maps to just below 1 ... decay_factor.
            factor = min(factor, decay_factor + (1.0 - decay_factor) * remaining / decay_steps)
    return float(factor)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group to ``lr`` times its ``lr_mul`` (default 1)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mul", 1.0)
