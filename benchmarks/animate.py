"""Per-frame cost of animation, split into landmarks, synthesis and video encoding.

    python benchmarks/animate.py                              # CPU: demo (64 px) and 256 px models
    python benchmarks/animate.py --device cuda --precision fp32 bf16 --compile   # on a GPU

* landmarks: the model's detector (mediapipe) on real driving frames (480 x 480);
* synthesis: G_l + G_s with cached source latents (what runs per frame once a person is
  encoded), at batch 1 and batch 8, for each precision (and ``torch.compile`` when asked);
* encode: H.264 (libx264, crf 18) of the written frames at the output size;
* end to end: ``AnimationPipeline.animate`` + writing, on the demo model only.

The ``demo`` model is the bundled release; ``256`` is the paper architecture
(``configs/lsr/vox224.yaml``) at 256 px with random weights (speed does not depend on the
values). Synthesis targets (issue 4): at 256 px on one H100 at least 100 frames/s at
batch 1 and 1000 frames/s batched.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkinghead.config import load_config
from talkinghead.data.video import read_video_frames
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.inference.source import SourceEncoding, SourceFace
from talkinghead.inference.writers import VideoWriter
from talkinghead.models.lsr import LSRModel

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "models" / "demo"
DRIVING = REPO / "examples" / "videos" / "liveportrait_d18.mp4"
PORTRAIT = REPO / "examples" / "portraits" / "sadtalker_happy.png"


def paper_pipeline(size: int, device: str) -> AnimationPipeline:
    config = load_config(REPO / "configs" / "lsr" / "vox224.yaml", [f"model.image_size={size}"], kind="lsr").model
    torch.manual_seed(0)
    return AnimationPipeline(LSRModel(config), device=device, name=f"paper architecture at {size} px")


def fake_source(pipeline: AnimationPipeline) -> None:
    """A random person state: synthesis speed does not depend on who is animated."""
    size = pipeline.size
    face = SourceFace("random", np.zeros((size, size, 3), np.uint8), np.array([0, 0, size, size], float),
                      np.zeros((size, size, 3), np.uint8), np.zeros((68, 3), np.float32), np.zeros((68, 2), np.float32))
    state = {name: torch.randn(spec.shape) for name, spec in pipeline.model.person_state_spec().items()}
    pipeline.source = SourceEncoding(state, pipeline.model.method, face, ["random"], pipeline.fingerprint)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_synthesis(pipeline: AnimationPipeline, batch: int, precision: str, seconds: float) -> float:
    """Milliseconds per frame of the per-frame synthesis (LSR: G_l + G_s) at this batch size."""
    lc = pipeline.model.landmark_channels
    x = (torch.rand(batch, lc, pipeline.size, pipeline.size) * 2 - 1).to(pipeline.device)
    for _ in range(3):  # warm-up (cuDNN autotuning, compilation)
        pipeline.synthesize(x, precision)
    sync(pipeline.device)
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        pipeline.synthesize(x, precision)
        calls += 1
    sync(pipeline.device)
    return (time.perf_counter() - start) / (calls * batch) * 1000


def time_landmarks(pipeline: AnimationPipeline, frames: list[np.ndarray]) -> float:
    pipeline.landmarker.detect(frames[0])
    start = time.perf_counter()
    for frame in frames:
        pipeline.landmarker.detect(frame)
    return (time.perf_counter() - start) / len(frames) * 1000


def time_encode(size: int, count: int = 60) -> float:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) // 4 + 96 for _ in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with VideoWriter(Path(tmp) / "bench.mp4", 30.0) as writer:
            for i in range(count):
                writer.write(frames[i % len(frames)])
        return (time.perf_counter() - start) / count * 1000


def end_to_end(pipeline: AnimationPipeline, frames: list[np.ndarray], view: int) -> float:
    """Frames/s of detection + motion + synthesis + upscaled H.264 writing."""
    import cv2

    pipeline.set_source([PORTRAIT])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with VideoWriter(Path(tmp) / "e2e.mp4", 30.0) as writer:
            for frame in pipeline.animate(frames, AnimateOptions(batch_size=8)):
                writer.write(cv2.resize(frame.image, (view, view), interpolation=cv2.INTER_CUBIC))
        return len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=["demo", "256"], help="demo and/or a size for the paper model")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd generators")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per synthesis measurement")
    parser.add_argument("--frames", type=int, default=60, help="driving frames for landmarks / end to end")
    args = parser.parse_args()

    frames = [f for _, _, f in itertools.islice(read_video_frames(DRIVING), args.frames)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; driving frames {frames[0].shape[1]}x"
          f"{frames[0].shape[0]} from {DRIVING.name}")
    for name in args.models:
        base = AnimationPipeline.from_pretrained(DEMO_MODEL, device=args.device) if name == "demo" else None
        pipe = base or paper_pipeline(int(name), args.device)
        params = sum(p.numel() for n in ("layout_generator", "image_generator")
                     for p in getattr(pipe.model, n).parameters())
        print(f"\n== {name}: {pipe.size} px, G_l + G_s {params / 1e6:.2f}M parameters, device {pipe.device}")
        lm = time_landmarks(pipe, frames[: min(len(frames), 30)])
        enc = time_encode(max(pipe.size, 256) if name == "demo" else pipe.size)
        print(f"landmarks {lm:.1f} ms/frame ({1000 / lm:.3g} frames/s); H.264 encode "
              f"{enc:.1f} ms/frame at {max(pipe.size, 256) if name == 'demo' else pipe.size} px")
        variants = [(False, p) for p in args.precision] + ([(True, p) for p in args.precision] if args.compile else [])
        for compiled, precision in variants:
            if precision != "fp32" and pipe.device.type != "cuda":
                continue
            current = pipe
            if compiled:
                current = (AnimationPipeline.from_pretrained(DEMO_MODEL, device=args.device) if name == "demo"
                           else paper_pipeline(int(name), args.device)).optimize(compile=True)
            elif pipe.device.type == "cuda":
                current.optimize(channels_last=True)
            fake_source(current)
            for batch in args.batches:
                ms = time_synthesis(current, batch, precision, args.seconds)
                print(f"synthesis {precision}{' compiled' if compiled else ''} batch {batch}: {ms:.2f} ms/frame "
                      f"({1000 / ms:.3g} frames/s)")
        if name == "demo":
            fps = end_to_end(AnimationPipeline.from_pretrained(DEMO_MODEL, device=args.device), frames, 256)
            print(f"end to end (landmarks + motion + synthesis + 256 px H.264): {fps:.1f} frames/s")
        pipe.close()


if __name__ == "__main__":
    main()
