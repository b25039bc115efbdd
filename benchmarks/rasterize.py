"""Throughput of the landmark rasterisers and of K-shot episode loading, in one process.

    python benchmarks/rasterize.py                     # rasterisers only
    python benchmarks/rasterize.py DATASET [--k 4]     # and EpisodeDataset episodes/s

The landmarks are real: the mediapipe backend's 478-point mesh (and its iBUG-68 points)
of a bundled portrait, or the first frame of DATASET when one is given. Threads are
limited to one, as in a DataLoader worker.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from talkinghead.data.rasterize import rasterize_landmarks

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO / "examples" / "portraits" / "sadtalker_happy.png"
SIZES = (64, 256, 512)


def rate(function, seconds: float) -> float:
    """Calls per second of ``function()`` over about ``seconds`` (after one warm-up call)."""
    function()
    count, start = 0, time.perf_counter()
    while True:
        function()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def landmarks_from_image(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """((68, 2) iBUG, (478, 3) mesh, side) of the largest face in a square-cropped image."""
    from talkinghead.data.landmarks.factory import create_landmarker

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"{path}: cannot read this image; pass another with --image")
    side = min(bgr.shape[:2])
    image = np.ascontiguousarray(cv2.cvtColor(bgr[:side, :side], cv2.COLOR_BGR2RGB))
    detector = create_landmarker("mediapipe")
    try:
        faces = detector.detect(image)
    finally:
        detector.close()
    if not faces:
        raise SystemExit(f"{path}: mediapipe found no face; pass another image with --image")
    return faces[0].ibug68, faces[0].dense, side


def landmarks_from_dataset(root: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """((68, 2) iBUG, (N, 3) dense, side) of the first frame of the dataset's first clip."""
    from talkinghead.data.dataset_format import PreparedDataset

    dataset = PreparedDataset(root)
    if not dataset.records:
        raise SystemExit(f"{root}: the dataset has no clips")
    clip = dataset.clip(dataset.records[0])
    return clip.landmarks68[0], clip.dense_landmarks[0], dataset.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, help="prepared dataset for the episode benchmark")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="portrait to take landmarks from")
    parser.add_argument("--k", type=int, default=4, help="source frames per episode")
    parser.add_argument("--split", default="train", help="split served by EpisodeDataset")
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent per measurement")
    args = parser.parse_args()

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.dataset is not None:
        ibug, dense, source_size = landmarks_from_dataset(args.dataset)
        origin = f"first frame of {args.dataset}"
    else:
        ibug, dense, source_size = landmarks_from_image(args.image)
        origin = str(args.image.relative_to(REPO) if args.image.is_relative_to(REPO) else args.image)
    print(f"landmarks: {origin} ({len(dense)} dense points, {source_size} px)")

    print(f"{'style':<7}{'points':>7}" + "".join(f"{f'{s} px':>12}" for s in SIZES) + "   (images/s)")
    for style, points in (("fsth", ibug), ("dense", dense), ("dense", ibug)):
        rates = [rate(lambda: rasterize_landmarks(points, s, style, source_size), args.seconds) for s in SIZES]
        print(f"{style:<7}{len(points):>7}" + "".join(f"{r:>12.0f}" for r in rates))

    if args.dataset is not None:
        from talkinghead.data.episodes import EpisodeDataset

        for style in ("fsth", "dense"):
            episodes = EpisodeDataset(args.dataset, split=args.split, k=args.k, landmark_style=style)
            counter = iter(range(1 << 62))

            def load() -> None:
                i = next(counter)
                episodes.set_epoch(i // len(episodes))
                episodes[i % len(episodes)]

            per_second = rate(load, args.seconds)
            print(
                f"EpisodeDataset k={args.k} {style} at {episodes.size} px: {per_second:.1f} episodes/s "
                f"({per_second * (args.k + 1):.0f} frames/s, {len(episodes)} clips of split {args.split!r})"
            )


if __name__ == "__main__":
    main()
