"""Cross-identity motion transfer: each portrait driven by each driving video of another person.

    OMP_NUM_THREADS=1 python benchmarks/cross_identity.py PORTRAITS DRIVERS OUT [--max-frames 48] [--start-frame 0]
        [--output-size 256]

PORTRAITS and DRIVERS are files or folders (photos; videos). For every pair this animates the
portrait with ``--checkpoint`` (default: the shipped ``models/demo``) and measures the metrics of
:mod:`talkinghead.evaluation.metrics.motion_transfer` twice:

* **landmark level**: the target landmarks the model is asked to draw, against the driver;
  what the motion transfer itself achieves, whatever the synthesis can render;
* **image level**: mediapipe re-run on the rendered result, against the driver; what a
  viewer gets (the synthesis may limit how far a mouth opens).

Variants (``--variants``): ``relative`` (the canonical 3-D frame), ``no-mouth`` (the same
without the model's mouth generator), ``similarity`` (the relative motion before the canonical
frame), and ``landmark-warp`` (a piecewise-affine warp of the source photo onto the
``relative`` targets: the identity reference for ``id_kept``). Frames are rendered and
measured at ``--output-size`` (default 256 px); landmarks are compared in the model's crop pixels. Writes ``OUT/results.json``
(per pair and means) and ``OUT/strips/PORTRAIT__DRIVER.png`` (rows: driver, then each variant;
six frames across the clip), and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from talkinghead.data.crop import crop_image, points_to_crop
from talkinghead.data.landmarks.factory import create_landmarker
from talkinghead.data.image_sequence import read_image
from talkinghead.data.video import read_video_frames
from talkinghead.evaluation.baselines import landmark_warp
from talkinghead.evaluation.face_embedding import DlibFaceEmbedder
from talkinghead.evaluation.metrics.motion_transfer import CROSS_METRICS, cross_identity_metrics
from talkinghead.evaluation.metrics.mouth_interior import interior_contrast, interior_share, mean_over_open_frames
from talkinghead.inference.motion import MotionTransfer
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.utils.atomic import atomic_write_json

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
VARIANTS = ("similarity", "relative", "no-mouth", "landmark-warp")
STRIP_COLUMNS = 6
# mediapipe finds faces in small crops more reliably at 256 px or more
REDETECT_SIZE = 256


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
    return [path]


def _main_face(landmarker, image: np.ndarray) -> np.ndarray | None:
    faces = landmarker.detect(image)
    return faces[0].dense.astype(np.float64) if faces else None


def _redetect(landmarker, crop: np.ndarray, size: int) -> np.ndarray | None:
    """(478, 3) landmarks of a rendered crop, in pixels of a ``size`` px crop, or None."""
    upscale = max(1.0, REDETECT_SIZE / crop.shape[0])
    big = cv2.resize(crop, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC) if upscale > 1 else crop
    points = _main_face(landmarker, big)
    return None if points is None else points * (size / big.shape[0])


def _interior(images, points) -> dict:
    """Teeth-or-cavity share and brightness contrast of the open mouths (docs/mouth.md)."""
    return {"share": mean_over_open_frames(interior_share, images, points),
            "contrast": mean_over_open_frames(interior_contrast, images, points)}


def _identity_distances(embedder: DlibFaceEmbedder, source: np.ndarray, images: np.ndarray) -> np.ndarray:
    reference = embedder.descriptors(source[None])[0]
    return np.linalg.norm(embedder.descriptors(images) - reference, axis=1)


def _run_pair(pipeline: AnimationPipeline, landmarker, embedder, portrait: Path, driver: Path, args) -> dict:
    source = pipeline.set_source([portrait])
    last = args.start_frame + args.max_frames
    frames = [rgb for index, _, rgb in read_video_frames(driver, range(args.start_frame, last))]
    driver_points = [_main_face(landmarker, f) for f in frames]
    keep = [i for i, p in enumerate(driver_points) if p is not None]
    frames, driver_points = [frames[i] for i in keep], [driver_points[i] for i in keep]
    # the method-independent targets: canonical relative motion at expression scale 1
    reference = MotionTransfer("relative", size=pipeline.size, source_points=source.reference.dense,
                               reference_points=driver_points[0])
    target = [reference.target_pose(p) for p in driver_points]
    out = {"portrait": portrait.name, "driver": driver.name, "frames": len(frames), "variants": {}}
    rows: dict[str, list[np.ndarray]] = {}
    relative_targets = None
    size = pipeline.frame_size
    source_crop = crop_image(source.reference.photo, source.reference.box, size)
    for variant in args.variants:
        if variant == "landmark-warp":
            if relative_targets is None:
                relative_targets = [reference(p) for p in driver_points]
            images = np.stack([landmark_warp(source_crop[None], pipeline.to_frame_pixels(source.reference.dense)[None],
                                             pipeline.to_frame_pixels(t)) for t in relative_targets])
            asked = relative_targets
        else:
            options = AnimateOptions(motion="relative", canonical_frame=variant != "similarity",
                                     mouth=variant != "no-mouth", overlap=False)
            animated = list(pipeline.animate(frames, options))
            images = np.stack([a.image for a in animated])
            asked = [a.landmarks for a in animated]
            if "driver" not in rows:
                rows["driver"] = [crop_image(a.driving, a.driving_box, size) for a in animated]
                # the driver's own opening, in its crop: what a real mouth scores
                driver_in_crop = [points_to_crop(p, a.driving_box, size) for p, a in zip(driver_points, animated)]
                out["driver_interior"] = {
                    "share": mean_over_open_frames(interior_share, rows["driver"], driver_in_crop),
                    "contrast": mean_over_open_frames(interior_contrast, rows["driver"], driver_in_crop)}
            if variant == "relative":
                relative_targets = asked
        redetected = [_redetect(landmarker, image, pipeline.size) for image in images]
        distances = _identity_distances(embedder, source_crop, images)
        figures = {"image": cross_identity_metrics(redetected, driver_points, target, distances),
                   "faces_found": sum(p is not None for p in redetected) / len(images),
                   # teeth or cavity in the opening the frame was asked to show (docs/mouth.md)
                   "interior": _interior(images, [pipeline.to_frame_pixels(p) for p in asked])}
        if variant != "landmark-warp":
            figures["landmark"] = cross_identity_metrics(asked, driver_points, target)
        out["variants"][variant] = figures
        rows[variant] = list(images)
    _write_strip(args.out / "strips" / f"{portrait.stem}__{driver.stem}.png", source_crop, rows)
    return out


def _write_strip(path: Path, source_crop: np.ndarray, rows: dict[str, list[np.ndarray]]) -> None:
    """Rows: driver crop, then each variant; six frames spread over the clip; the source photo first."""
    size = source_crop.shape[0]
    count = min(len(r) for r in rows.values())
    columns = np.linspace(0, count - 1, STRIP_COLUMNS).round().astype(int)
    lines = []
    for name, images in rows.items():
        first = source_crop.copy() if name == "driver" else np.zeros_like(source_crop)
        cv2.putText(first, name, (4, size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * size / 128, (255, 255, 0), 1)
        lines.append(np.concatenate([first] + [cv2.resize(images[c], (size, size)) for c in columns], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(lines, axis=0), cv2.COLOR_RGB2BGR))


def _means(pairs: list[dict]) -> dict:
    means: dict = {}
    for variant in {v for p in pairs for v in p["variants"]}:
        means[variant] = {}
        for level in ("landmark", "image"):
            values = {n: [p["variants"][variant][level][n] for p in pairs
                          if level in p["variants"].get(variant, {}) and p["variants"][variant][level][n] is not None]
                      for n in CROSS_METRICS}
            if any(values.values()):
                means[variant][level] = {n: float(np.mean(v)) if v else None for n, v in values.items()}
        means[variant]["interior"] = _interior_means([p["variants"][variant]["interior"] for p in pairs
                                                      if variant in p["variants"]])
    means["driver"] = {"interior": _interior_means([p["driver_interior"] for p in pairs if "driver_interior" in p])}
    return means


def _interior_means(rows: list[dict]) -> dict:
    out = {}
    for name in ("share", "contrast"):
        values = [r[name] for r in rows if r.get(name) is not None]
        out[name] = float(np.mean(values)) if values else None
    return out


def _table(means: dict) -> str:
    lines = ["| variant | level | " + " | ".join(CROSS_METRICS) + " |", "|---|---|" + "---|" * len(CROSS_METRICS)]
    for variant in VARIANTS:
        for level in ("landmark", "image"):
            row = means.get(variant, {}).get(level)
            if row:
                cells = ["-" if row[n] is None else f"{row[n]:.3f}" for n in CROSS_METRICS]
                lines.append(f"| {variant} | {level} | " + " | ".join(cells) + " |")
    lines += ["", "| open mouths | teeth or cavity share | brightness contrast |", "|---|---|---|"]
    for variant in ("driver", *VARIANTS):
        row = means.get(variant, {}).get("interior")
        if row:
            cells = ["-" if row[n] is None else f"{row[n]:.2f}" for n in ("share", "contrast")]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("portraits", type=Path, help="a portrait photo or a folder of them")
    parser.add_argument("drivers", type=Path, help="a driving video or a folder of them")
    parser.add_argument("out", type=Path, help="output folder (results.json, strips/)")
    parser.add_argument("--checkpoint", type=Path, default=Path(__file__).parents[1] / "models" / "demo")
    parser.add_argument("--max-frames", type=int, default=48, help="driving frames per pair (default 48)")
    parser.add_argument("--start-frame", type=int, default=0,
                        help="first driving frame used (the neutral frame of relative motion; default 0)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--output-size", type=int, default=256, help="side of the rendered frames (default 256)")
    args = parser.parse_args(argv)
    portraits = _files(args.portraits, PHOTO_SUFFIXES)
    drivers = _files(args.drivers, (".mp4", ".mov", ".mkv", ".avi"))
    if not portraits or not drivers:
        parser.error(f"no portraits in {args.portraits} or no driving videos in {args.drivers}")
    pipeline = AnimationPipeline.from_pretrained(args.checkpoint, device="cpu")
    pipeline.set_output_size(args.output_size)
    landmarker = create_landmarker("mediapipe")
    embedder = DlibFaceEmbedder()
    pairs = []
    for portrait in portraits:
        for driver in drivers:
            pairs.append(_run_pair(pipeline, landmarker, embedder, portrait, driver, args))
            print(f"{portrait.name} x {driver.name}: done", file=sys.stderr)
    means = _means(pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "results.json", {"checkpoint": str(args.checkpoint), "max_frames": args.max_frames,
                                                   "start_frame": args.start_frame, "output_size": args.output_size,
                                                   "pairs": pairs, "means": means})
    print(_table(means))
    return 0


if __name__ == "__main__":
    sys.exit(main())
