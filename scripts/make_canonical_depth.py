"""Write the depth column of the canonical face mesh (``canonical_depth.py``) from real faces.

``canonical_mesh.py`` holds only x, y (fractions of the head crop). The canonical 3-D frame
(``talkinghead.data.landmarks.canonical_frame``) also needs a depth per point. This script
detects mediapipe's 478 3-D points on photos and on every ``--stride``-th frame of videos,
aligns each face in 3-D onto the current canonical shape (x, y from ``CANONICAL_MESH``)
with a similarity fitted on the rigid points, and takes the per-point median of the
aligned depth; two rounds, so that turned heads are aligned with a depth estimate too:

    python3 scripts/make_canonical_depth.py ../shared/data/real src/talkinghead/data/landmarks/canonical_depth.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from talkinghead.data.landmarks.canonical_frame import RIGID_POINTS
from talkinghead.data.landmarks.canonical_mesh import CANONICAL_MESH
from talkinghead.data.landmarks.factory import create_landmarker
from talkinghead.data.landmarks.similarity import fit_similarity
from talkinghead.data.image_sequence import read_image
from talkinghead.data.video import read_video_frames


def detect_faces(folder: Path, stride: int) -> list[np.ndarray]:
    """(478, 3) mediapipe points of the main face of every photo and strided video frame."""
    landmarker = create_landmarker("mediapipe")
    faces = []
    images = [read_image(p) for p in sorted(folder.glob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    for path in sorted(folder.glob("*.mp4")):
        images.extend(rgb for index, _, rgb in read_video_frames(path) if index % stride == 0)
    for image in images:
        found = landmarker.detect(image)
        if found:
            faces.append(found[0].dense.astype(np.float64))
    landmarker.close()
    return faces


def median_depth(faces: list[np.ndarray], rounds: int = 2) -> np.ndarray:
    """(478,) per-point median depth, in canonical crop fractions, of the aligned faces."""
    canonical = np.zeros((478, 3))
    canonical[:, :2] = np.asarray(CANONICAL_MESH)
    for _ in range(rounds):
        aligned = []
        for face in faces:
            # the face mapped into the canonical frame by the inverse of its rigid fit
            transform = fit_similarity(canonical[list(RIGID_POINTS)], face[list(RIGID_POINTS)])
            aligned.append(transform.inverse_apply(face)[:, 2])
        depth = np.median(np.stack(aligned), axis=0)
        canonical[:, 2] = depth - depth[list(RIGID_POINTS)].mean()
    return canonical[:, 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of face photos and .mp4 videos")
    parser.add_argument("output", type=Path, help="the Python module to write")
    parser.add_argument("--stride", type=int, default=10, help="use every N-th video frame (default 10)")
    args = parser.parse_args()
    faces = detect_faces(args.folder, args.stride)
    depth = median_depth(faces)
    rows = "\n".join(f"    {z:.5f}," for z in depth.tolist())
    args.output.write_text(
        '"""Depth of the canonical face mesh, per mediapipe point (generated; do not edit).\n\n'
        "Per-point median depth (z away from the camera, as a fraction of the head crop's side, zero\n"
        f"mean over the rigid points) of {len(faces)} faces aligned in 3-D onto ``CANONICAL_MESH``,\n"
        'written by ``scripts/make_canonical_depth.py``.\n"""\n\n'
        "CANONICAL_DEPTH: tuple[float, ...] = (\n" + rows + "\n)\n"
    )
    print(f"wrote {args.output}: {len(depth)} depths from {len(faces)} faces")


if __name__ == "__main__":
    main()
