"""Per-frame synthesis of MetaPortrait against LSR, both at the paper architecture and the same resolution.

    python benchmarks/metaportrait_speed.py                         # CPU, 256 px, batch 1 and 8
    python benchmarks/metaportrait_speed.py --device cuda --precision fp32 bf16 --compile

What is timed is what runs per frame once a person is encoded (cached source work): for
MetaPortrait E_w + F_w + warping + the refinement network with the source features and z_id
from the person state; for LSR G_l + G_s with the cached latents. Weights are random (speed
does not depend on their values). Three models at ``--size``: MetaPortrait's paper preset
(``configs/metaportrait/paper.yaml``), the shipped preset (``configs/metaportrait/demo.yaml``,
narrow networks, warp at half size, ``dense_mesh`` landmarks) and LSR's paper architecture
(``configs/lsr/vox224.yaml``). Every figure is also printed as a ratio to the reference conv
stack (``benchmarks/reference.py``) timed in the same run: the ratios are what to compare
between machines.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch
from reference import median_ms, reference_ms

from talkinghead.config import load_config
from talkinghead.models.lsr import LSRModel
from talkinghead.models.metaportrait import MetaPortraitModel

REPO = Path(__file__).resolve().parents[1]


def models(size: int) -> dict[str, torch.nn.Module]:
    """The MetaPortrait presets and LSR's paper architecture at ``size`` px, random weights, eval mode."""
    torch.manual_seed(0)
    size_override = [f"model.image_size={size}"]
    mp = load_config(REPO / "configs" / "metaportrait" / "paper.yaml", size_override).model
    shipped = load_config(REPO / "configs" / "metaportrait" / "demo.yaml", size_override).model
    lsr = load_config(REPO / "configs" / "lsr" / "vox224.yaml", size_override).model
    return {"MetaPortrait (paper)": MetaPortraitModel(mp).eval(), "MetaPortrait (shipped)": MetaPortraitModel(shipped).eval(),
            "LSR (paper)": LSRModel(lsr).eval()}


def ms_per_frame(model, batch: int, device: torch.device, precision: str, repeats: int) -> float:
    """Median milliseconds per frame of ``model(landmarks, state)`` with a random cached person state."""
    size = model.image_size
    state = {name: torch.randn(batch, *spec.shape, device=device) for name, spec in model.person_state_spec().items()}
    landmarks = torch.rand(batch, model.landmark_channels, size, size, device=device) * 2 - 1
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())

    def run():
        model(landmarks, state)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad(), autocast:
        return median_ms(run, repeats) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"per-frame synthesis at {args.size} px on {device} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads), cached source work, median of {args.repeats}")
    reference = reference_ms(device=device)
    print(f"  reference conv stack (benchmarks/reference.py): {reference:.1f} ms")
    for name, model in models(args.size).items():
        model = model.to(device)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        variants = [("eager", model)] + ([("compiled", torch.compile(model))] if args.compile else [])
        for label, runnable in variants:
            for precision in args.precision:
                for batch in args.batch:
                    ms = ms_per_frame(runnable, batch, device, precision, args.repeats)
                    print(f"  {name:22s} {params:6.1f}M  {label:8s} {precision:4s} batch {batch}: "
                          f"{ms:8.1f} ms/frame ({1000 / ms:7.2f} frames/s, {ms / reference:5.2f}x reference)")
    print(f"  reference conv stack, timed again: {reference_ms(device=device):.1f} ms (drift check)")


if __name__ == "__main__":
    main()
