"""Pretrained networks used as fixed measuring instruments (loss and metric networks)."""

from __future__ import annotations

from torch import nn


class FrozenModule(nn.Module):
    """A network that never trains: no gradients to its weights, always in eval mode.

    Subclasses call :meth:`freeze` at the end of ``__init__``. ``train(True)`` (e.g. from a
    parent module's ``.train()``) is ignored, so batch norms keep their running statistics
    and dropout never acts.
    """

    def freeze(self) -> None:
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenModule":
        return super().train(False)
