"""Exponential moving average of network weights (the generator used for evaluation).

theta_ema <- decay * theta_ema + (1 - decay) * theta after every optimiser step, as in
Karras et al. (Progressive GAN, StyleGAN); buffers (e.g. running statistics) are copied.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
from torch import nn

from talkinghead.training.distributed import unwrap


class ExponentialMovingAverage:
    """A frozen copy of a network whose weights follow an exponential moving average.

    Args:
        module: the trained network (DDP / ``torch.compile`` wrappers are removed).
        decay: weight of the old average per update, in [0, 1) (0 copies the weights).
        start_step: before this step, :meth:`update` copies the weights outright, so the
            average does not carry the random initialisation.

    Attributes:
        module: the averaged network, in eval mode with ``requires_grad=False``.
    """

    def __init__(self, module: nn.Module, decay: float, *, start_step: int = 0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.start_step = int(start_step)
        self.num_updates = 0
        self.module = copy.deepcopy(unwrap(module)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int | None = None) -> None:
        """Blend the current weights of ``module`` into the average.

        Args:
            module: the trained network (wrapped or not), same architecture as the copy.
            step: the current step; before ``start_step`` the weights are copied outright.
        """
        source = unwrap(module)
        copy_only = step is not None and step < self.start_step
        averaged = dict(self.module.named_parameters())
        current = dict(source.named_parameters())
        if averaged.keys() != current.keys():
            missing = sorted(averaged.keys() ^ current.keys())[:5]
            raise ValueError(f"EMA update: the network's parameters differ from the averaged copy's ({missing})")
        for name, param in current.items():
            target = averaged[name]
            if copy_only or not target.is_floating_point():
                target.copy_(param)
            else:
                target.lerp_(param.detach().to(device=target.device, dtype=target.dtype), 1.0 - self.decay)
        averaged_buffers = dict(self.module.named_buffers())
        for name, buffer in source.named_buffers():
            averaged_buffers[name].copy_(buffer)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Settings and the averaged weights (tensors and plain values only)."""
        return {
            "decay": self.decay,
            "start_step": self.start_step,
            "num_updates": self.num_updates,
            "module": self.module.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (a plain network state dict is accepted too)."""
        if "module" in state and isinstance(state["module"], Mapping):
            self.decay = float(state.get("decay", self.decay))
            self.start_step = int(state.get("start_step", self.start_step))
            self.num_updates = int(state.get("num_updates", 0))
            state = state["module"]
        self.module.load_state_dict(state)
