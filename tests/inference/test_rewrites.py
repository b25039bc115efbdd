"""Inference rewrites compute what the original modules compute, and leave the weights alone."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import talkinghead.models  # noqa: F401  (registers every method)
from talkinghead.config import load_config
from talkinghead.inference.rewrites import fuse_for_inference
from talkinghead.inference.runtime import check_inputs
from talkinghead.layers.equalized import EqualConv2d
from talkinghead.layers.spade import SPADE, FusedSPADE
from talkinghead.models import get_method, registered_methods
from talkinghead.models.refinement_network import FusedFusionBlock, FusionBlock

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _trained_like(module: torch.nn.Module) -> torch.nn.Module:
    """Random non-zero values everywhere (zero-initialised heads would hide a wrong rewrite)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return module.eval()


def test_spade_as_one_affine_conv_is_exact():
    spade = _trained_like(SPADE(6, 5, hidden_channels=4))
    fused = copy.deepcopy(spade)
    assert fuse_for_inference(fused)["spade"] == 1 and type(fused) is FusedSPADE
    x, cond = torch.randn(2, 6, 9, 9), torch.randn(2, 5, 18, 18)
    torch.testing.assert_close(fused(x, cond), spade(x, cond), rtol=0, atol=1e-5)
    assert fused.state_dict().keys() == spade.state_dict().keys()


def test_fusion_block_film_as_one_conv_is_exact():
    block = _trained_like(FusionBlock(8, 6, 4))
    fused = copy.deepcopy(block)
    assert fuse_for_inference(fused)["fusion_block"] == 1 and type(fused) is FusedFusionBlock
    h, z, image = torch.randn(2, 8, 8, 8), torch.randn(2, 6), torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(fused(h, z, image), block(h, z, image), rtol=0, atol=1e-5)


def test_folded_equal_conv_is_exact():
    conv = _trained_like(EqualConv2d(4, 5, 3, padding=1, lr_mul=0.1))
    fused = copy.deepcopy(conv)
    fuse_for_inference(fused)
    x = torch.randn(1, 4, 7, 7)
    torch.testing.assert_close(fused(x), conv(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", registered_methods())
def test_rewritten_models_match_and_keep_their_checkpoints(method):
    torch.manual_seed(0)
    model = _trained_like(get_method(method).inference_model(load_config(CONFIGS / method / "tiny.yaml").model))
    rewritten = copy.deepcopy(model)
    counts = fuse_for_inference(rewritten)
    # FSTH has none of the rewritten modules (spectrally normalised convs and AdaIN): a no-op there
    assert (sum(counts.values()) > 0) == (method != "fsth")
    assert fuse_for_inference(rewritten) == {k: 0 for k in counts}  # a second pass finds nothing left
    # In float64: with these wild random weights float32 rounding alone is amplified to 1e-3
    # through the warps (eager float32 vs float64 differ by 0.5 here); in float64 a rewrite
    # that changed the function would still show, rounding does not.
    landmarks, state = check_inputs(model, 2, torch.device("cpu"))
    landmarks, state = landmarks.double(), {k: v.double() for k, v in state.items()}
    double = copy.deepcopy(model).double()
    double_rewritten = copy.deepcopy(double)
    fuse_for_inference(double_rewritten)
    with torch.no_grad():
        diff = (double_rewritten(landmarks, state) - double(landmarks, state)).abs().max().item()
    assert diff <= 1e-9
    # the same state dict, so a checkpoint loads into a rewritten model and back
    original = model.state_dict()
    assert rewritten.state_dict().keys() == original.keys()
    rewritten.load_state_dict(original)


def test_a_block_brings_its_own_rewrite_and_the_shared_module_names_none(monkeypatch):
    import ast

    from talkinghead.inference import rewrites
    from talkinghead.layers import inference_rewrites

    class Doubler(torch.nn.Module):
        def forward(self, x):
            return x * 2

    class AddedDoubler(Doubler):
        def forward(self, x):
            return x + x

    def rewrite(module):
        module.__class__ = AddedDoubler

    monkeypatch.setitem(inference_rewrites._REWRITES, Doubler, ("doubler", rewrite))  # as a new block would register
    model = torch.nn.Sequential(Doubler(), torch.nn.ReLU())
    counts = fuse_for_inference(model)
    assert counts["doubler"] == 1 and type(model[0]) is AddedDoubler
    assert {"spade", "equal_conv", "fusion_block"} <= set(counts)  # the blocks' own registrations
    tree = ast.parse(Path(rewrites.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module.startswith("talkinghead")}
    assert imported == {"talkinghead.layers.inference_rewrites"}
