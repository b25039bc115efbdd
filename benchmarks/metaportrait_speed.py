"""Per-frame synthesis of MetaPortrait against LSR, both at the paper architecture and the same resolution.

    python benchmarks/metaportrait_speed.py                         # CPU, 256 px, batch 1 and 8
    python benchmarks/metaportrait_speed.py --device cuda --precision fp32 bf16 --compile

What is timed is what runs per frame once a person is encoded (cached source work): for
MetaPortrait E_w + F_w + warping + the refinement network with the source features and z_id
from the person state; for LSR G_l + G_s with the cached latents. Weights are random (speed
does not depend on their values); both models use the presets ``configs/*/paper.yaml`` /
``configs/lsr/vox224.yaml`` at ``--size``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import torch

from talkinghead.config import load_config
from talkinghead.models.lsr import LSRModel
from talkinghead.models.metaportrait import MetaPortraitModel

REPO = Path(__file__).resolve().parents[1]


def models(size: int) -> dict[str, torch.nn.Module]:
    """The two paper architectures at ``size`` px, random weights, eval mode."""
    torch.manual_seed(0)
    mp = load_config(REPO / "configs" / "metaportrait" / "paper.yaml", [f"model.image_size={size}"]).model
    lsr = load_config(REPO / "configs" / "lsr" / "vox224.yaml", [f"model.image_size={size}"]).model
    return {"MetaPortrait (paper)": MetaPortraitModel(mp).eval(), "LSR (paper)": LSRModel(lsr).eval()}


def frames_per_second(model, batch: int, device: torch.device, precision: str, repeats: int) -> float:
    """Frames/s of ``model(landmarks, state)`` with a random cached person state."""
    size = model.image_size
    state = {name: torch.randn(batch, *spec.shape, device=device) for name, spec in model.person_state_spec().items()}
    landmarks = torch.randn(batch, model.landmark_channels, size, size, device=device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        model(landmarks, state)  # warm-up (and compilation)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(landmarks, state)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return batch * repeats / (time.perf_counter() - start)


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
          f"{torch.get_num_threads()} threads), cached source work")
    for name, model in models(args.size).items():
        model = model.to(device)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        variants = [("eager", model)] + ([("compiled", torch.compile(model))] if args.compile else [])
        for label, runnable in variants:
            for precision in args.precision:
                for batch in args.batch:
                    fps = frames_per_second(runnable, batch, device, precision, args.repeats)
                    print(f"  {name:22s} {params:6.1f}M  {label:8s} {precision:4s} batch {batch}: "
                          f"{fps:8.2f} frames/s ({1000 / fps:8.1f} ms/frame)")


if __name__ == "__main__":
    main()
