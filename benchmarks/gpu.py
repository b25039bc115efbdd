"""Every GPU figure of issue 17 in one prepared run (under 10 minutes on one H100/H200).

    python benchmarks/gpu.py --output gpu_figures.json          # on a machine with a GPU
    python benchmarks/gpu.py --quick --device cpu               # tiny models, seconds, on a CPU (tests run this)

For LSR's paper architecture at 256 px and the shipped MetaPortrait preset (random weights:
speed does not depend on them) at its 128 px and at 256 px, per-frame synthesis with the
person state cached, at batch 1 and batched:

* ``eager fp32``: PyTorch as is;
* ``eager bf16 channels_last``: bf16 autocast and channels-last memory layout;
* ``compiled bf16 cuda-graphs``: ``torch.compile(mode="reduce-overhead")`` (CUDA graphs) of the same.

Every figure is printed as ms/frame, frames/s and a ratio to the reference conv stack
(``benchmarks/reference.py``) timed on the same device in the same run, and written to a JSON
file. A deadline (``--budget`` seconds) skips what is left and says so, so the run never
overstays its slot. Targets (GPU): LSR 256 px >= 100 frames/s at batch 1 and >= 1000 batched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
from reference import reference_ms

import talkinghead.models  # noqa: F401  (registers every method)
from talkinghead.config import load_config
from talkinghead.models import get_method

REPO = Path(__file__).resolve().parents[1]


def models(quick: bool) -> dict[str, tuple[str, Path, list[str]]]:
    """Name -> (method, config, overrides) of the models to time."""
    if quick:
        return {"LSR tiny 64 px": ("lsr", REPO / "configs" / "lsr" / "tiny.yaml", []),
                "MetaPortrait tiny 64 px": ("metaportrait", REPO / "configs" / "metaportrait" / "tiny.yaml", [])}
    return {
        "LSR paper 256 px": ("lsr", REPO / "configs" / "lsr" / "vox224.yaml", ["model.image_size=256"]),
        "MetaPortrait shipped 128 px": ("metaportrait", REPO / "configs" / "metaportrait" / "demo.yaml",
                                        ["model.image_size=128"]),
        "MetaPortrait shipped 256 px": ("metaportrait", REPO / "configs" / "metaportrait" / "demo.yaml",
                                        ["model.image_size=256"]),
    }


def timed(function, batch: int, device: torch.device, seconds: float) -> float:
    """ms per frame of ``function()`` over about ``seconds`` after three warm-up calls."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):
        function()
    sync()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        function()
        calls += 1
    sync()
    return (time.perf_counter() - start) / (calls * batch) * 1000


def variants(device: torch.device, quick: bool) -> list[tuple[str, bool, bool, bool]]:
    """(label, bf16, channels_last, compiled) to time on ``device``."""
    out = [("eager fp32", False, False, False), ("eager bf16 channels_last", True, True, False)]
    if not quick:
        out.append(("compiled bf16 cuda-graphs", True, True, True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny models, batch 1 and 2, no compile (a CPU check)")
    parser.add_argument("--batch", type=int, default=64, help="the batched figure's batch size")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--budget", type=float, default=540.0, help="stop starting new measurements after this")
    parser.add_argument("--output", type=Path, help="JSON file of the figures")
    args = parser.parse_args()
    start = time.perf_counter()
    device = torch.device(args.device)
    seconds = 0.2 if args.quick else args.seconds
    batches = [1, 2] if args.quick else [1, args.batch]
    reference = reference_ms(repeats=3 if args.quick else 10, device=device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}; reference conv stack {reference:.2f} ms")
    figures: dict = {"device": name, "torch": torch.__version__, "reference_ms": reference, "results": [],
                     "skipped": []}
    for label, (method, config_path, overrides) in models(args.quick).items():
        config = load_config(config_path, overrides).model
        torch.manual_seed(0)
        model = get_method(method).inference_model(config).eval().to(device)
        for variant, bf16, channels_last, compiled in variants(device, args.quick):
            runnable = model
            if channels_last:
                runnable = runnable.to(memory_format=torch.channels_last)
            if compiled:
                runnable = torch.compile(runnable, mode="reduce-overhead")
            for batch in batches:
                if time.perf_counter() - start > args.budget:
                    figures["skipped"].append(f"{label} {variant} batch {batch}")
                    continue
                from talkinghead.inference.runtime import check_inputs

                landmarks, state = check_inputs(model, batch, device)
                if channels_last:
                    landmarks = landmarks.contiguous(memory_format=torch.channels_last)
                autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

                def run():
                    with torch.no_grad(), autocast:
                        return runnable(landmarks, state)

                ms = timed(run, batch, device, seconds)
                figures["results"].append({"model": label, "variant": variant, "batch": batch, "ms_per_frame": ms,
                                           "frames_per_second": 1000 / ms, "x_reference": ms / reference})
                print(f"  {label:30s} {variant:28s} batch {batch:3d}: {ms:8.3f} ms/frame "
                      f"({1000 / ms:8.1f} frames/s, {ms / reference:6.3f}x reference)")
        model.to(memory_format=torch.contiguous_format)
    if figures["skipped"]:
        print(f"skipped (over the {args.budget:.0f} s budget): {', '.join(figures['skipped'])}")
    figures["seconds"] = time.perf_counter() - start
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"done in {figures['seconds']:.0f} s")


if __name__ == "__main__":
    main()
