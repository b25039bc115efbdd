"""Reduced precision for the shipped model on a CPU: bf16 autocast and onnxruntime int8, speed and fidelity.

    OMP_NUM_THREADS=1 python benchmarks/precision.py --threads 1

On real driving frames (``examples/videos/liveportrait_d19.mp4``, not used in training) and a
bundled portrait, the shipped model's synthesis in fp32 (eager and onnxruntime), bf16
autocast (eager) and onnxruntime int8 (dynamic quantisation of the exported graph's weights):
ms/frame at batch 1 with the reference ratio, and PSNR of each against fp32 eager over the
frames. The issue's bar for shipping int8: PSNR >= 35 dB against fp32.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from reference import median_ms, reference_ms

from talkinghead.data.rasterize import image_to_tensor
from talkinghead.data.video import read_video_frames
from talkinghead.inference.driving import DrivingTracker
from talkinghead.inference.onnx_export import ONNX_FILE, export_onnx, load_synthesis_session
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline

REPO = Path(__file__).resolve().parents[1]
DRIVING = REPO / "examples" / "videos" / "liveportrait_d19.mp4"
PORTRAIT = REPO / "examples" / "portraits" / "liveportrait_s12.jpg"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    return frames.add(1).mul(127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reference = reference_ms()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; reference conv stack {reference:.1f} ms")
    pipeline = AnimationPipeline.from_pretrained(REPO / "models" / "demo", device="cpu")
    pipeline.set_source([PORTRAIT])
    frames = [f for _, _, f in itertools.islice(read_video_frames(DRIVING), args.frames)]
    drawings = []
    # the landmark images the model would see for these frames (relative motion onto the portrait)
    for _, _, drawing, _ in pipeline._prepared(frames, AnimateOptions(), DrivingTracker(pipeline.landmarker), None):
        drawings.append(drawing)
    landmarks = image_to_tensor(np.stack(drawings))  # (n, c, s, s)
    model = pipeline.model
    state = model.expand_state(pipeline.source.state, 1)
    with torch.no_grad():
        fp32 = to_uint8(torch.cat([model(x[None], state) for x in landmarks]))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = to_uint8(torch.cat([model(x[None], state).float() for x in landmarks]))
            one = landmarks[:1]
            bf16_ms = median_ms(lambda: model(one, state), 5)
        fp32_ms = median_ms(lambda: model(landmarks[:1], state), 5)
    results = [("fp32 eager", fp32_ms, math.inf), ("bf16 autocast eager", bf16_ms, psnr(bf16, fp32))]
    with tempfile.TemporaryDirectory() as tmp:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        import onnx

        export_onnx(model, Path(tmp) / "fp32")
        graph = onnx.load(str(Path(tmp) / "fp32" / ONNX_FILE))
        # the exporter's intermediate shape annotations trip the quantiser's shape inference; it infers its own
        del graph.graph.value_info[:]
        onnx.save(graph, str(Path(tmp) / "plain.onnx"))
        quantize_dynamic(str(Path(tmp) / "plain.onnx"), str(Path(tmp) / "int8.onnx"), weight_type=QuantType.QInt8)
        names = ["landmarks", *model.person_state_spec()]
        for label, path in (("fp32 onnxruntime", Path(tmp) / "fp32" / ONNX_FILE), ("int8 onnxruntime (dynamic)",
                                                                                  Path(tmp) / "int8.onnx")):
            session = load_synthesis_session(path, threads=torch.get_num_threads())

            def run(x):
                feeds = {names[0]: x.numpy(), **{n: state[n].contiguous().numpy() for n in names[1:]}}
                return torch.from_numpy(session.run(None, feeds)[0])

            out = to_uint8(torch.cat([run(x[None]) for x in landmarks]))
            results.append((label, median_ms(lambda: run(landmarks[:1]), 5), psnr(out, fp32)))
    for label, ms, quality in results:
        print(f"  {label:28s} {ms:8.1f} ms/frame ({ms / reference:5.3f}x reference); PSNR vs fp32 eager "
              f"{quality:.1f} dB over {len(drawings)} frames")
    print(f"reference conv stack timed again: {reference_ms():.1f} ms")


if __name__ == "__main__":
    main()
