"""Helpers on ``nn.Module`` wrappers."""

from __future__ import annotations

from torch import nn


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside DDP / DataParallel (``.module``) and ``torch.compile`` (``._orig_mod``).

    Use it before ``state_dict()`` so saved keys carry no ``module.`` / ``_orig_mod.`` prefix.
    """
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            module = module._orig_mod
        else:
            return module
