"""Inference-time rewrites that make the networks cheaper without changing their function.

:func:`fuse_for_inference` rewrites a model in place (call it on an inference model in
eval mode; training code never sees these modules). Each rewrite computes the same
mathematical function from the same stored parameters; results differ from the original
modules only by floating-point rounding (a different order of the same sums, measured
below 1e-5 on the shipped model). The parameters and ``state_dict()`` are untouched, so
checkpoints keep loading, the weights' fingerprint is unchanged, and a rewritten model
exports to ONNX like the original. What is rewritten:

* **SPADE** (LSR's G_s): ``gamma`` and ``beta`` read the same hidden map, so they run as one
  convolution with both output channel sets, and the ``1 +`` of ``(1 + gamma) * x`` is folded
  into gamma's bias. Exact (same products and sums per output channel).
* **Equalised convolutions** (every LSR / FSTH network): the run-time weight scale
  ``weight * scale`` (a copy of every weight on every call) is folded into a buffer once.
  Exact up to the rounding of one multiplication, done once instead of per call.
* **MetaPortrait's fusion blocks** (G_r): the FiLM ``scale`` and ``shift`` convolutions read
  the same hidden map: one convolution, ``1 +`` folded into the scale's bias. Exact.

Not done, because it would change the function: sharing SPADE's first (condition)
convolution between the norms of one residual block (each norm has its own trained
weights; sharing them is a different architecture that would need retraining).

The rewrites swap a module's class for a subclass that overrides one method and add
non-persistent buffers (not in ``state_dict``), so nothing else about the module changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.layers.equalized import EqualConv2d
from talkinghead.layers.spade import SPADE
from talkinghead.models.refinement_network import FusionBlock


def _effective(conv: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight and bias a conv applies: (out, in, k, k) and (out,)."""
    if isinstance(conv, EqualConv2d):
        bias = conv.bias * conv.lr_mul if conv.bias is not None else None
        return conv.weight * conv.scale, bias
    return conv.weight, conv.bias


def _paired(first: nn.Module, second: nn.Module, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One conv's weight and bias from two convs of the same input; ``offset`` is added to the first's bias."""
    w1, b1 = _effective(first)
    w2, b2 = _effective(second)
    b1 = b1 if b1 is not None else torch.zeros(w1.shape[0], device=w1.device, dtype=w1.dtype)
    b2 = b2 if b2 is not None else torch.zeros(w2.shape[0], device=w2.device, dtype=w2.dtype)
    return torch.cat([w1, w2]).detach().clone(), torch.cat([b1 + offset, b2]).detach().clone()


class FusedSPADE(SPADE):
    """:class:`SPADE` whose gamma and beta run as one convolution (set up by :func:`fuse_for_inference`)."""

    def affine_params(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition (b, cond_channels, h, w) -> scale (b, C, h, w) = 1 + gamma and bias (b, C, h, w) = beta."""
        hidden = self.shared(cond)
        both = F.conv2d(hidden, self.paired_weight, self.paired_bias, padding=self.gamma.padding)  # (b, 2C, h, w)
        return both[:, : self.num_features], both[:, self.num_features:]


class FoldedEqualConv2d(EqualConv2d):
    """:class:`EqualConv2d` with ``weight * scale`` computed once (set up by :func:`fuse_for_inference`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.folded_weight, self.folded_bias, stride=self.stride, padding=self.padding)


class FusedFusionBlock(FusionBlock):
    """:class:`FusionBlock` whose FiLM scale and shift run as one convolution."""

    def motion_path(self, h_id: torch.Tensor, warped_image: torch.Tensor) -> torch.Tensor:
        """h_motion = (1 + Conv(I~_s)) * h_id + Conv(I~_s), with both convs in one call."""
        image = F.interpolate(warped_image, size=h_id.shape[-2:], mode="bilinear", align_corners=False,
                              antialias=False) if warped_image.shape[-2:] != h_id.shape[-2:] else warped_image
        hidden = self.film_shared(image.to(h_id.dtype))
        both = F.conv2d(hidden, self.paired_weight, self.paired_bias, padding=self.film_scale.padding)  # (b, 2C, h, w)
        channels = h_id.shape[1]
        return torch.addcmul(both[:, channels:], both[:, :channels], h_id)


# module type -> (its rewrite, the conv whose bias gets the "1 +", the other conv, count name)
_PAIRED = {
    SPADE: (FusedSPADE, "gamma", "beta", "spade"),
    FusionBlock: (FusedFusionBlock, "film_scale", "film_shift", "fusion_block"),
}


@torch.no_grad()
def fuse_for_inference(model: nn.Module) -> dict[str, int]:
    """Apply every exact rewrite to ``model``'s modules, in place; returns how many of each.

    Call after the weights are loaded and before moving nothing else: the derived buffers
    follow later ``.to(device)`` calls. Re-applying is a no-op. Training a rewritten model
    is not supported (the derived buffers would not follow the updated parameters).
    """
    counts = {"spade": 0, "equal_conv": 0, "fusion_block": 0}
    for module in list(model.modules()):
        pairing = _PAIRED.get(type(module))
        if pairing is not None:
            fused, first, second, name = pairing
            weight, bias = _paired(getattr(module, first), getattr(module, second), 1.0)
            module.register_buffer("paired_weight", weight, persistent=False)
            module.register_buffer("paired_bias", bias, persistent=False)
            module.__class__ = fused
            counts[name] += 1
    for module in list(model.modules()):
        if type(module) is EqualConv2d:
            weight, bias = _effective(module)
            module.register_buffer("folded_weight", weight.detach().clone(), persistent=False)
            module.register_buffer("folded_bias", None if bias is None else bias.detach().clone(), persistent=False)
            module.__class__ = FoldedEqualConv2d
            counts["equal_conv"] += 1
    return counts
