"""Write the canonical face mesh of the ``dense_mesh`` landmark style from a prepared dataset.

The canonical mesh is where each of the 478 mediapipe points sits, on average, in a head
crop: the per-point median, over every frame of every clip, of the points as fractions of
the crop side. It is the shared coordinate frame through which ``dense_mesh`` maps one face
onto another (see ``talkinghead.data.mesh_fields``). The values are written as a Python
module so the package needs no data file:

    python3 scripts/make_canonical_mesh.py /work/data/mp128 src/talkinghead/data/landmarks/canonical_mesh.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def median_mesh(root: Path) -> tuple[np.ndarray, int]:
    """(478, 2) per-point median crop fractions over every frame of ``root``, and the frame count."""
    size = json.loads((root / "dataset.json").read_text())["config"]["size"]
    frames = []
    for path in sorted(root.glob("clips/**/landmarks.npz")):
        with np.load(path) as data:
            dense = data["dense"][..., :2]  # (t, 478, 2) crop pixels
        frames.append(dense[np.isfinite(dense).all(axis=(1, 2))])
    points = np.concatenate(frames) / size  # (n, 478, 2)
    if len(points) == 0:
        raise SystemExit(f"{root}: no frames with dense landmarks")
    return np.median(points, axis=0), len(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="a dataset made by `talkinghead prepare` (mediapipe landmarks)")
    parser.add_argument("output", type=Path, help="the Python module to write")
    args = parser.parse_args()
    mesh, count = median_mesh(args.dataset)
    rows = "\n".join(f"    ({x:.5f}, {y:.5f})," for x, y in mesh.tolist())
    args.output.write_text(
        '"""The canonical face mesh of the ``dense_mesh`` landmark style (generated; do not edit).\n\n'
        f"Per-point median position of the 478 mediapipe points, as fractions of the head crop's side\n"
        f"(x right, y down), over {count} frames of {len(list(args.dataset.glob('clips/**/landmarks.npz')))} "
        "clips of the shared talking-face videos,\nwritten by ``scripts/make_canonical_mesh.py``.\n"
        '"""\n\nCANONICAL_MESH: tuple[tuple[float, float], ...] = (\n' + rows + "\n)\n"
    )
    print(f"wrote {args.output}: {len(mesh)} points from {count} frames")


if __name__ == "__main__":
    main()
