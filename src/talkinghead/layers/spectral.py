"""Spectrally normalised convolutions and linear layers (Miyato et al. 2018), as FSTH uses everywhere (§3.4).

The weight is divided by its largest singular value, estimated with one power iteration
per training forward pass (``torch.nn.utils.parametrizations.spectral_norm``); in eval
mode the stored singular vectors are used as they are, so inference is deterministic and
exports to ONNX as a plain division.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv2d(in_channels: int, out_channels: int, kernel_size: int, *, padding: int = 0, bias: bool = True) -> nn.Conv2d:
    """A stride-1 ``nn.Conv2d`` with spectral normalisation of its weight."""
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias))


def sn_linear(in_features: int, out_features: int, *, bias: bool = True) -> nn.Linear:
    """An ``nn.Linear`` with spectral normalisation of its weight."""
    return spectral_norm(nn.Linear(in_features, out_features, bias=bias))


def has_spectral_norm(module: nn.Module) -> bool:
    """Whether ``module``'s ``weight`` is spectrally normalised (parametrised)."""
    return parametrize.is_parametrized(module, "weight") and any(
        type(p).__name__ == "_SpectralNorm" for p in module.parametrizations["weight"]
    )


def layers_without_spectral_norm(network: nn.Module) -> list[str]:
    """Names of the ``Conv2d`` / ``Linear`` layers of ``network`` whose weight is not spectrally normalised."""
    return [
        name for name, m in network.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not has_spectral_norm(m)
    ]
