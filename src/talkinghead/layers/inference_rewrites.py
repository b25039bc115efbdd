"""Exact inference rewrites, registered by the blocks they rewrite.

A block whose computation can be rearranged for inference without changing its function
(two convolutions of one input run as one; a run-time weight scale folded in once) registers
its rewrite here, beside its own definition (``register_inference_rewrite(SPADE, "spade",
...)`` in ``layers/spade.py``). :func:`talkinghead.inference.rewrites.fuse_for_inference`
applies every registered rewrite and names no block, so a new method's blocks bring their
own rewrites without touching shared code.

A rewrite swaps the module's class for a subclass that overrides one method and adds
non-persistent buffers (not in ``state_dict``): parameters, checkpoints and ONNX export stay
as they were.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# A rewrite changes one module in place (its class and derived buffers); see the module docstring.
InferenceRewrite = Callable[[nn.Module], None]

# exact module type -> (name counted by fuse_for_inference, its rewrite)
_REWRITES: dict[type[nn.Module], tuple[str, InferenceRewrite]] = {}


def register_inference_rewrite(block: type[nn.Module], name: str, rewrite: InferenceRewrite) -> None:
    """Rewrite every module whose type is exactly ``block`` (not a subclass) with ``rewrite``.

    Args:
        block: the module class.
        name: what ``fuse_for_inference`` counts these rewrites as (``spade``).
        rewrite: changes one module in place; it must compute the same function.
    """
    _REWRITES[block] = (name, rewrite)


def inference_rewrite(module: nn.Module) -> tuple[str, InferenceRewrite] | None:
    """The registered ``(name, rewrite)`` of ``module``'s exact type, or None."""
    return _REWRITES.get(type(module))


def rewrite_names() -> list[str]:
    """Names of every registered rewrite, in registration order."""
    return list(dict.fromkeys(name for name, _ in _REWRITES.values()))


def effective_conv(conv: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight (out, in, k, k) and bias (out,) a convolution applies.

    A convolution that scales its stored parameters at run time (equalised learning rate)
    says so through an ``effective_parameters()`` method; a plain ``nn.Conv2d`` applies its own.
    """
    effective = getattr(conv, "effective_parameters", None)
    return effective() if effective is not None else (conv.weight, conv.bias)


def pair_convs(module: nn.Module, fused_class: type[nn.Module], first: str, second: str) -> None:
    """Let ``module`` run its two convolutions ``first`` and ``second`` of one input as one call.

    Stores their stacked weights as ``paired_weight`` (2C, in, k, k) and biases as
    ``paired_bias`` (2C,), with 1 added to ``first``'s bias (the ``1 +`` of a
    ``(1 + gamma) * x`` modulation), and switches ``module`` to ``fused_class``, whose
    forward reads them.
    """
    w1, b1 = effective_conv(getattr(module, first))
    w2, b2 = effective_conv(getattr(module, second))
    b1 = b1 if b1 is not None else torch.zeros(w1.shape[0], device=w1.device, dtype=w1.dtype)
    b2 = b2 if b2 is not None else torch.zeros(w2.shape[0], device=w2.device, dtype=w2.dtype)
    module.register_buffer("paired_weight", torch.cat([w1, w2]).detach().clone(), persistent=False)
    module.register_buffer("paired_bias", torch.cat([b1 + 1.0, b2]).detach().clone(), persistent=False)
    module.__class__ = fused_class
