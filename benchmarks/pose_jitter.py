"""Head-pose jitter of the target landmarks: a still driver, and the lag the stabiliser adds on a moving one.

For each driving clip, the driver's mediapipe landmarks are turned into target landmarks for one
portrait (128 px crop) by relative motion three ways: the similarity path (before the canonical
frame), the canonical 3-D frame, and the canonical frame with the pose stabiliser
(`inference/pose_filter.py`, `animate`'s default). Printed per clip and `--smooth` value: the mean
frame-to-frame motion of the rigid points (forehead, nose, temples; px/frame, lower = steadier),
its ratio to the similarity path, and how far the stabilised points sit from the unstabilised
ones (px; the lag it costs).

    python benchmarks/pose_jitter.py [--portrait IMG] [--still VIDEO] [--moving VIDEO] [--frames N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from talkinghead.data.crop import points_to_crop
from talkinghead.data.landmarks.canonical_frame import RIGID_POINTS
from talkinghead.data.landmarks.factory import create_landmarker
from talkinghead.data.image_sequence import read_image
from talkinghead.data.video import read_video_frames
from talkinghead.inference.motion import MotionTransfer, TemporalSmoother
from talkinghead.inference.pose_filter import PoseFilter

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SIZE = 128


def targets(source: np.ndarray, driver: list[np.ndarray], sigma: float, canonical: bool, stabilize: bool) -> np.ndarray:
    """(t, len(RIGID_POINTS), 2) rigid target points of every driving frame."""
    transfer = MotionTransfer("relative", size=SIZE, source_points=source, reference_points=driver[0],
                              use_canonical=canonical, pose_filter=PoseFilter() if stabilize else None)
    smoother, points = TemporalSmoother(sigma), []
    for frame in driver:
        points += [p for p, _ in smoother.push(frame)]
    points += [p for p, _ in smoother.flush()]
    return np.stack([transfer(p) for p in points])[:, list(RIGID_POINTS), :2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portrait", type=Path, default=REAL / "sadtalker_sad1.png")
    parser.add_argument("--still", type=Path, default=REAL / "liveportrait_d18.mp4", help="a driver whose head stays still")
    parser.add_argument("--moving", type=Path, default=REAL / "tpsmm_driving.mp4", help="a driver who moves his head")
    parser.add_argument("--frames", type=int, default=40, help="driving frames per clip (from the first)")
    args = parser.parse_args()
    landmarker = create_landmarker("mediapipe")
    face = landmarker.detect(read_image(args.portrait))[0]
    side = face.box[2] - face.box[0]
    source = points_to_crop(face.dense, np.array([face.box[0], face.box[1], face.box[0] + side, face.box[1] + side]), SIZE)
    for clip in (args.still, args.moving):
        driver = [landmarker.detect(rgb)[0].dense for _, _, rgb in read_video_frames(clip, range(args.frames))]
        for sigma in (0.0, 1.0):
            before = targets(source, driver, sigma, canonical=False, stabilize=False)
            plain = targets(source, driver, sigma, canonical=True, stabilize=False)
            steady = targets(source, driver, sigma, canonical=True, stabilize=True)
            jitter = {name: np.linalg.norm(np.diff(t, axis=0), axis=-1).mean()
                      for name, t in (("similarity", before), ("canonical", plain), ("canonical+stabilize", steady))}
            lag = np.linalg.norm(steady - plain, axis=-1).mean()
            print(f"{clip.name} --smooth {sigma:g}: " + ", ".join(
                f"{name} {value:.3f} px/frame ({value / jitter['similarity']:.2f}x)" for name, value in jitter.items())
                + f"; stabiliser moves the points {lag:.3f} px on average")


if __name__ == "__main__":
    main()
