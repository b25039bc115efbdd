"""Per-frame cost of animation: the stages, synthesis per runtime, and end to end; every figure also x reference.

    OMP_NUM_THREADS=1 python benchmarks/animate.py --threads 1                 # CPU: shipped model + LSR 256 px
    python benchmarks/animate.py --parts end_to_end --runtimes eager onnx      # only the end-to-end figures
    python benchmarks/animate.py --parts memory                                # peak RSS at 100 vs 1000 frames

Parts (``--parts``, default all but ``memory``):

* ``stages``: per frame of the shipped model (``models/demo``): decoding the driving video,
  landmark detection (mediapipe), rasterising (drawing + mesh coordinate fields), H.264 encoding
  at the model's size;
* ``synthesis``: the shipped model's per-frame synthesis in each ``--runtimes`` (after the exact
  rewrites of :mod:`talkinghead.inference.rewrites`), batch 1 and 8;
* ``end_to_end``: ``talkinghead animate``'s own job (decode + landmarks + synthesis + encode
  to an mp4), serial and with stage overlap, per runtime and per ``--output-sizes`` (128: the
  model's own frames; 256 / 512: the networks at 128 and the source warped at that size);
  frames/s exclude loading and source preparation, as the CLI's summary line;
* ``lsr256``: LSR's paper architecture at 256 px (random weights), synthesis at batch 1:
  eager, rewritten, and onnxruntime;
* ``memory``: peak RSS of animating 100 and of 1000 frames (fresh processes; the driving
  frames loop), which should be within 10%.

The reference conv stack (``benchmarks/reference.py``) is timed at the start and the end of
the run; every time is printed as a ratio to the first (the shared machine's load drifts).
Targets (issue 17): shipped model end to end >= 25 frames/s on a 2-core CPU; LSR 256 px
synthesis <= 1.4x the reference.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from reference import median_ms, reference_ms

from talkinghead.config import load_config
from talkinghead.data.video import read_video_frames
from talkinghead.inference.animate_job import AnimateJob, OutputSpec, run_animate
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.inference.rewrites import fuse_for_inference
from talkinghead.inference.runtime import build_runtime, check_inputs
from talkinghead.inference.source import model_fingerprint, rasterizer_points
from talkinghead.inference.writers import VideoWriter
from talkinghead.models.lsr import LSRModel

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "models" / "demo"
DRIVING = REPO / "examples" / "videos" / "liveportrait_d18.mp4"
PORTRAIT = REPO / "examples" / "portraits" / "sadtalker_happy.png"
PARTS = ("stages", "synthesis", "end_to_end", "lsr256", "memory")


def line(label: str, ms: float, reference: float) -> str:
    """``label: 12.3 ms/frame (81.3 frames/s, 0.05x reference)``."""
    return f"  {label:48s} {ms:8.1f} ms/frame ({1000 / ms:7.1f} frames/s, {ms / reference:5.3f}x reference)"


def per_call_ms(function, count: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - start) / count * 1000


def stages(frames: list[np.ndarray], reference: float) -> None:
    """Decoding, landmarks, rasterising and encoding of the shipped model, ms per frame."""
    start = time.perf_counter()
    count = sum(1 for _ in itertools.islice(read_video_frames(DRIVING), len(frames)))
    print(line(f"decode {frames[0].shape[1]}x{frames[0].shape[0]} H.264", (time.perf_counter() - start) / count * 1000,
               reference))
    with AnimationPipeline.from_pretrained(DEMO_MODEL, device="cpu") as pipeline:
        pipeline.set_source([PORTRAIT])
        cycle = itertools.cycle(frames)
        print(line("landmarks (mediapipe)", per_call_ms(lambda: pipeline.landmarker.detect(next(cycle)), 20),
                   reference))
        points = rasterizer_points(pipeline.source.reference.dense, pipeline.rasterizer)
        print(line(f"rasterise {pipeline.rasterizer.name} (drawing + mesh fields)",
                   per_call_ms(lambda: pipeline.rasterizer(points, pipeline.size), 20), reference))
        size = pipeline.size
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) // 4 + 96 for _ in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with VideoWriter(Path(tmp) / "bench.mp4", 30.0) as writer:
            for i in range(60):
                writer.write(pictures[i % len(pictures)])
        print(line(f"encode H.264 at {size} px", (time.perf_counter() - start) / 60 * 1000, reference))


def synthesis(runtimes: list[str], reference: float, cache: Path | None) -> None:
    """The shipped model's per-frame synthesis per runtime (rewritten), batch 1 and 8."""
    pipeline = AnimationPipeline.from_pretrained(DEMO_MODEL, device="cpu")
    original = copy.deepcopy(pipeline.model)
    for batch in (1, 8):
        landmarks, state = check_inputs(original, batch, torch.device("cpu"))
        with torch.no_grad():
            ms = median_ms(lambda: original(landmarks, state), 5) / batch
        print(line(f"synthesis eager, original modules, batch {batch}", ms, reference))
    for kind in runtimes:
        runtime = pipeline.set_runtime(kind, batch_size=8, cache_dir=cache)
        for batch in (1, 8):
            landmarks, state = check_inputs(original, batch, torch.device("cpu"))
            ms = median_ms(lambda: runtime(landmarks, state), 5) / batch
            print(line(f"synthesis {kind} (rewritten), batch {batch}", ms, reference))
        print(f"    {kind}: {runtime.describe()}")


def end_to_end(runtimes: list[str], frames: int, reference: float, sizes: list[int], mouths: list[bool]) -> None:
    """``talkinghead animate`` on the example video: serial and overlapped, per runtime, output size and mouth."""
    with tempfile.TemporaryDirectory() as tmp:
        for mouth, size, kind, overlap in itertools.product(mouths, sizes, runtimes, (False, True)):
            job = AnimateJob(checkpoint=DEMO_MODEL, driving=DRIVING, outputs=[OutputSpec(Path(tmp) / "e2e.mp4")],
                             sources=[PORTRAIT], max_frames=frames, overwrite=True, device="cpu", progress=False,
                             runtime=kind, output_size=size)
            summary = run_animate(job, AnimateOptions(batch_size=8, overlap=overlap, mouth=mouth))
            ms = 1000 / summary.frames_per_second
            label = f"end to end {size} px {kind}{'' if mouth else ' --no-mouth'}"
            print(line(f"{label}, {'overlapped' if overlap else 'serial'} ({summary.frames} frames)", ms, reference))


def lsr256(reference: float, cache: Path | None) -> None:
    """LSR's paper architecture at 256 px, synthesis batch 1: eager, rewritten, onnxruntime."""
    config = load_config(REPO / "configs" / "lsr" / "vox224.yaml", ["model.image_size=256"], kind="lsr").model
    torch.manual_seed(0)
    model = LSRModel(config).eval()
    landmarks, state = check_inputs(model, 1, torch.device("cpu"))
    with torch.no_grad():
        expected = model(landmarks, state)
        print(line("LSR 256 px eager", median_ms(lambda: model(landmarks, state), 3), reference))
        rewritten = copy.deepcopy(model)
        fuse_for_inference(rewritten)
        diff = (rewritten(landmarks, state) - expected).abs().max().item()
        print(line(f"LSR 256 px eager, rewritten (max |diff| {diff:.1g})",
                   median_ms(lambda: rewritten(landmarks, state), 3), reference))
    fingerprint = model_fingerprint({n: getattr(model, n) for n in model.network_names})
    runtime = build_runtime(rewritten, "onnx", batch_size=1, fingerprint=fingerprint, cache_dir=cache, reference=model)
    print(line(f"LSR 256 px onnx, rewritten (max |diff| {runtime.max_abs_diff:.1g})",
               median_ms(lambda: runtime(landmarks, state), 3), reference))


def peak_rss_mb(frames: int) -> float:
    """Peak RSS (MB) of a fresh process animating ``frames`` looped driving frames into an mp4."""
    code = (
        "import itertools, resource, sys, tempfile\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from animate import DEMO_MODEL, DRIVING, PORTRAIT\n"
        "from talkinghead.data.video import read_video_frames\n"
        "from talkinghead.inference.options import AnimateOptions\n"
        "from talkinghead.inference.pipeline import AnimationPipeline\n"
        "from talkinghead.inference.writers import VideoWriter\n"
        "frames = [f for _, _, f in itertools.islice(read_video_frames(DRIVING), 50)]\n"
        "loop = (frames[i % 50] if (i // 50) % 2 == 0 else frames[49 - i % 50] for i in range(int(sys.argv[1])))\n"
        "pipeline = AnimationPipeline.from_pretrained(DEMO_MODEL, device='cpu')\n"
        "pipeline.set_source([PORTRAIT])\n"
        "with tempfile.TemporaryDirectory() as tmp, VideoWriter(tmp + '/m.mp4', 30.0) as writer:\n"
        "    for frame in pipeline.animate(loop, AnimateOptions(batch_size=8, overlap=True)):\n"
        "        writer.write(frame.image)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(frames), str(Path(__file__).parent)], check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=[p for p in PARTS if p != "memory"])
    parser.add_argument("--runtimes", nargs="+", choices=("eager", "compile", "onnx", "auto"), default=["eager", "onnx"])
    parser.add_argument("--frames", type=int, default=60, help="driving frames for the stages and end to end")
    parser.add_argument("--mouth", choices=("on", "off", "both"), default="on",
                        help="end to end with the model's mouth generator, without it (--no-mouth), or both")
    parser.add_argument("--threads", type=int, help="torch / onnxruntime threads (default: torch's)")
    parser.add_argument("--cache", type=Path, help="runtime cache folder (default $TALKINGHEAD_HOME/runtime)")
    parser.add_argument("--output-sizes", type=int, nargs="+", default=[128, 256],
                        help="output sizes of the end-to-end figures (default 128 256)")
    parser.add_argument("--memory-frames", type=int, nargs=2, default=[100, 1000])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {' '.join(load)}")
    reference = reference_ms()
    print(f"reference conv stack (benchmarks/reference.py): {reference:.1f} ms; ratios below are to this")
    frames = [f for _, _, f in itertools.islice(read_video_frames(DRIVING), args.frames)]
    if "stages" in args.parts:
        print("== stages of the shipped model (models/demo), per frame")
        stages(frames, reference)
    if "synthesis" in args.parts:
        print("== synthesis of the shipped model")
        synthesis(args.runtimes, reference, args.cache)
    if "end_to_end" in args.parts:
        print("== end to end: talkinghead animate's job (decode + landmarks + synthesis + encode), target >= 25 frames/s")
        mouths = {"on": [True], "off": [False], "both": [True, False]}[args.mouth]
        end_to_end(args.runtimes, args.frames, reference, args.output_sizes, mouths)
    if "lsr256" in args.parts:
        print("== LSR paper architecture at 256 px, synthesis batch 1 (target <= 1.4x reference)")
        lsr256(reference, args.cache)
    if "memory" in args.parts:
        print("== memory: peak RSS of animate (fresh process each), target within 10%")
        short, long = (peak_rss_mb(n) for n in args.memory_frames)
        print(f"  peak RSS {args.memory_frames[0]} frames {short:.0f} MB, {args.memory_frames[1]} frames {long:.0f} MB "
              f"({100 * (long / short - 1):+.1f}%)")
    print(f"reference conv stack timed again: {reference_ms():.1f} ms (drift during the run); "
          f"this process's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
