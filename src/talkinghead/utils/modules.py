"""Helpers on ``nn.Module`` wrappers."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn


def unwrap(module: nn.Module, *, keep_ddp: bool = False) -> nn.Module:
    """The network inside DDP / DataParallel (``.module``) and ``torch.compile`` (``._orig_mod``).

    Use it before ``state_dict()`` so saved keys carry no ``module.`` / ``_orig_mod.`` prefix.
    ``keep_ddp=True`` strips only ``torch.compile`` and stops at a DDP / DataParallel wrapper
    (the trainer needs DDP's ``no_sync``). ``None`` comes back as ``None``.
    """
    while True:
        if not keep_ddp and isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            module = module._orig_mod
        else:
            return module


def parameter_counts(networks: Mapping[str, nn.Module]) -> dict[str, int]:
    """Number of parameters of every network, by name."""
    return {name: sum(p.numel() for p in net.parameters()) for name, net in networks.items()}
