"""Throughput of `talkinghead prepare`: frames/s end to end, and where the time goes.

Usage:
    python benchmarks/prepare.py [--input DIR ...] [--workers 1 2] [--frames-per-clip all 10] [--size 256]

Prints one row per (input, frames per clip, workers): clips, frames written, wall time,
frames/s, and the share of decode / detect (face + landmarks) / segment / write, summed
over worker processes. Each run writes to a fresh temporary folder.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from talkinghead.config import load_config
from talkinghead.data.prepare import RunOptions, prepare_dataset

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUTS = [REPO / "examples" / "videos", REPO.parent / "shared" / "data" / "real"]


def run(input_dir: Path, frames_per_clip, workers: int, size: int) -> dict:
    config = load_config(REPO / "configs" / "prepare" / "default.yaml", kind="prepare",
                         values={"frames_per_clip": frames_per_clip, "size": size, "segmentation": "landmarks"})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = prepare_dataset(input_dir, Path(tmp) / "ds", config, RunOptions(workers=workers, progress=False))
        wall = time.perf_counter() - start
    return {"summary": summary, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, nargs="+", default=[p for p in DEFAULT_INPUTS if p.is_dir()])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--frames-per-clip", nargs="+", default=["all", "10"])
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    header = f"{'input':<14} {'frames/clip':>11} {'workers':>7} {'clips':>5} {'frames':>6} {'wall s':>7} " \
             f"{'frames/s':>8}  decode detect segment write"
    print(header)
    print("-" * len(header))
    for input_dir in args.input:
        for fpc in args.frames_per_clip:
            fpc_value = fpc if fpc == "all" else int(fpc)
            for workers in args.workers:
                result = run(input_dir, fpc_value, workers, args.size)
                s = result["summary"]
                total = sum(s.timings.values()) or 1.0
                shares = "  ".join(f"{100 * s.timings.get(k, 0) / total:5.1f}%" for k in ("decode", "detect", "segment", "write"))
                print(f"{input_dir.name:<14} {fpc:>11} {workers:>7} {s.clips_done:>5} {s.frames_written:>6} "
                      f"{result['wall']:>7.1f} {s.frames_written / result['wall']:>8.1f}  {shares}", flush=True)


if __name__ == "__main__":
    main()
