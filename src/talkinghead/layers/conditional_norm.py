"""One factory for every normalisation, by registry name (imaginaire's style).

Every norm is called as ``norm(x, cond=None)``: ``instance`` and ``none`` ignore ``cond``,
``adain`` takes a latent (b, latent_dim) and ``spade`` a spatial map (b, c, H, W). Blocks
can then be written once for any norm.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.layers.adain import AdaIN
from talkinghead.layers.spade import SPADE


class InstanceNorm(nn.Module):
    """Instance norm with the conditional-norm call signature.

    Args:
        num_features: channels C (only checked and reported).
        affine: learn a per-channel scale and bias.
    """

    conditional = False

    def __init__(self, num_features: int, affine: bool = False) -> None:
        super().__init__()
        self.num_features = num_features
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(b, C, h, w) -> (b, C, h, w); ``cond`` is ignored."""
        return F.instance_norm(x, weight=self.weight, bias=self.bias)

    def extra_repr(self) -> str:
        return f"{self.num_features}, affine={self.weight is not None}"


class NoNorm(nn.Module):
    """Identity with the conditional-norm call signature.

    Args:
        num_features: channels C (unused; kept so every norm is built the same way).
    """

    conditional = False

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Any shape -> ``x`` unchanged."""
        return x


NORMS: dict[str, type[nn.Module]] = {
    "instance": InstanceNorm,
    "adain": AdaIN,
    "spade": SPADE,
    "none": NoNorm,
}


def build_norm(name: str, num_features: int, **kwargs) -> nn.Module:
    """Build the normalisation called ``name`` over ``num_features`` channels.

    Args:
        name: ``instance`` (kwargs: affine), ``adain`` (kwargs: latent_dim), ``spade``
            (kwargs: cond_channels, hidden_channels, kernel_size) or ``none``.
        num_features: channels of the normalised input.
        **kwargs: the norm's own arguments.

    Returns:
        A module called as ``norm(x, cond=None)``.

    Raises:
        ValueError: for an unknown name, or arguments the chosen norm does not take / needs.
    """
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; choose one of {sorted(NORMS)}")
    cls = NORMS[name]
    signature = inspect.signature(cls.__init__)
    try:
        signature.bind(None, num_features, **kwargs)
    except TypeError as error:
        accepted = [p for p in signature.parameters if p not in ("self", "num_features")]
        takes = accepted or "no other arguments"
        raise ValueError(f"norm {name!r}: {error}; it takes num_features and {takes}, got {sorted(kwargs)}") from None
    return cls(num_features, **kwargs)
