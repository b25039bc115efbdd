"""Inference-time rewrites that make the networks cheaper without changing their function.

:func:`fuse_for_inference` rewrites a model in place (call it on an inference model in
eval mode; training code never sees these modules). The rewrites themselves are registered
by the blocks they rewrite (:mod:`talkinghead.layers.inference_rewrites`); this module names
none of them. Each computes the same mathematical function from the same stored parameters;
results differ from the original modules only by floating-point rounding (a different order
of the same sums, measured below 1e-5 on the shipped model). The parameters and
``state_dict()`` are untouched, so checkpoints keep loading, the weights' fingerprint is
unchanged, and a rewritten model exports to ONNX like the original. Registered today: two
convolutions of one input run as one (SPADE's gamma and beta, the FiLM scale and shift of
MetaPortrait's fusion blocks), and the equalised convolutions' run-time weight scale folded
in once.

Not done, because it would change the function: sharing SPADE's first (condition)
convolution between the norms of one residual block (each norm has its own trained
weights; sharing them is a different architecture that would need retraining).
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.layers.inference_rewrites import inference_rewrite, rewrite_names


@torch.no_grad()
def fuse_for_inference(model: nn.Module) -> dict[str, int]:
    """Apply every registered exact rewrite to ``model``'s modules, in place; returns how many of each.

    Call after the weights are loaded: the derived buffers follow later ``.to(device)``
    calls. Re-applying is a no-op (a rewritten module's type has no rewrite). Training a
    rewritten model is not supported (the derived buffers would not follow the updated
    parameters).
    """
    counts = dict.fromkeys(rewrite_names(), 0)
    for module in list(model.modules()):
        found = inference_rewrite(module)
        if found is not None:
            name, rewrite = found
            rewrite(module)
            counts[name] += 1
    return counts
