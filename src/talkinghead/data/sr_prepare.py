"""Consecutive-frame windows for temporal super-resolution (MetaPortrait §3.3), prepared once.

``talkinghead prepare`` samples a few sparse frames per clip, which is right for the animation
models and useless for a temporal module: super-resolution over a window needs *adjacent*
frames. This reuses a prepared dataset's per-clip head crop (``crop_box`` in ``meta.json``,
fixed for the whole clip) and its identity split, re-reads the source videos, and writes runs
of consecutive frames at 512 px (the ground truth) with their 256 px inputs.

Only clips whose crop is at least ``min_source_side`` source pixels wide are used, so the
512 px targets hold real detail and not upsampled pixels.

Degradation (fixed, so inputs at training and at evaluation match): the 512 px crop is
area-downsampled 2x (``cv2.INTER_AREA``, the box filter a renderer's 2x supersampling gives),
then JPEG-compressed at ``jpeg_quality`` (mild blocking, as 256 px videos carry).

Layout written (``OUT``)::

    sr_dataset.json                      # settings, and every segment with identity and split
    clips/<identity>/<clip_id>/seg<k>/hr.npy   # (t, 512, 512, 3) uint8 RGB, consecutive frames
    clips/<identity>/<clip_id>/seg<k>/lr.npy   # (t, 256, 256, 3) uint8 RGB, its degraded input

Each segment folder is written under a temporary name and renamed when complete; a clip
already present is skipped, so an interrupted run resumes. Run it as
``talkinghead prepare-sr PREPARED VIDEOS OUT``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from talkinghead.data.crop import crop_image
from talkinghead.data.video import probe_video, read_video_frames
from talkinghead.errors import InputNotFoundError
from talkinghead.utils.atomic import atomic_write_json

SR_DATASET_FILE = "sr_dataset.json"
SR_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SRPrepareSettings:
    """What :func:`prepare_sr_windows` writes.

    Attributes:
        size: side of the ground-truth crops (the input is half of it).
        min_source_side: smallest crop side in source pixels a clip needs to be used.
        train_segments: runs of consecutive frames per training clip (spread over the clip).
        train_length: frames per training run.
        test_segments: runs per held-out clip.
        test_length: frames per held-out run (longer: E_warp is measured over them).
        jpeg_quality: JPEG quality of the degraded input (100 = no compression).
    """

    size: int = 512
    min_source_side: int = 500
    train_segments: int = 3
    train_length: int = 12
    test_segments: int = 1
    test_length: int = 30
    jpeg_quality: int = 90


def degrade(hr: np.ndarray, quality: int) -> np.ndarray:
    """The fixed 2x degradation: area downsample, then JPEG at ``quality``.

    Args:
        hr: (h, w, 3) uint8 RGB with even h and w.
        quality: JPEG quality 1-100; 100 skips compression.

    Returns:
        (h // 2, w // 2, 3) uint8 RGB.
    """
    h, w = hr.shape[:2]
    lr = cv2.resize(hr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    if quality >= 100:
        return lr
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(lr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode a frame")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def segment_starts(num_frames: int, count: int, length: int) -> list[int]:
    """Start indices of ``count`` runs of ``length`` frames spread evenly over a clip.

    Returns fewer runs when the clip is too short for ``count`` non-overlapping ones, and none
    when it is shorter than ``length``.
    """
    if num_frames < length:
        return []
    count = max(1, min(count, num_frames // length))
    if count == 1:
        return [(num_frames - length) // 2]
    return [round(i * (num_frames - length) / (count - 1)) for i in range(count)]


def _clip_metas(prepared: Path) -> list[dict]:
    metas = []
    for path in sorted((prepared / "clips").glob("*/*/meta.json")):
        metas.append(json.loads(path.read_text()))
    if not metas:
        raise InputNotFoundError(f"{prepared}: holds no clips/*/*/meta.json; give a folder written by `talkinghead prepare`")
    return metas


def _write_segment(folder: Path, hr: np.ndarray, lr: np.ndarray) -> None:
    """hr.npy and lr.npy into ``folder``, which appears only when both are complete."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "hr.npy", hr)
    np.save(tmp / "lr.npy", lr)
    os.replace(tmp, folder)


def prepare_sr_windows(prepared: Path, videos: Path, out: Path, settings: SRPrepareSettings) -> dict:
    """Write the consecutive-frame segments of every clip large enough; returns the index.

    Args:
        prepared: a dataset written by ``talkinghead prepare`` (for crop boxes, identities
            and the identity split; its frames are not used).
        videos: the folder the dataset was prepared from (``meta.json``'s ``source`` is
            relative to it).
        out: the output folder (see the module docstring).
        settings: what to write.
    """
    out.mkdir(parents=True, exist_ok=True)
    segments = []
    skipped = []
    for meta in _clip_metas(prepared):
        box = np.asarray(meta["crop_box"], dtype=np.float64)  # (4,) x0, y0, x1, y1 in source pixels
        side = float(box[2] - box[0])
        if side < settings.min_source_side or meta.get("source_kind") != "video":
            skipped.append(meta["clip_id"])
            continue
        test = meta.get("split") == "test"
        count, length = (settings.test_segments, settings.test_length) if test else (settings.train_segments, settings.train_length)
        source = videos / meta["source"]
        if not source.is_file():
            raise InputNotFoundError(f"{source}: the source video of clip {meta['clip_id']} is missing; "
                                     "pass the folder the dataset was prepared from")
        clip_dir = out / "clips" / meta["identity"] / meta["clip_id"]
        starts = segment_starts(probe_video(source).num_frames, count, length)
        for k, start in enumerate(starts):
            folder = clip_dir / f"seg{k}"
            entry = {"identity": meta["identity"], "clip_id": meta["clip_id"], "split": "test" if test else "train",
                     "path": str(folder.relative_to(out)), "start_frame": start, "num_frames": length,
                     "source": meta["source"], "crop_side": round(side, 1), "fps": meta.get("fps")}
            segments.append(entry)
            if (folder / "lr.npy").is_file():
                continue
            chunk = [f for _, _, f in read_video_frames(source, list(range(start, start + length)))]
            hr = np.stack([crop_image(f, box, settings.size) for f in chunk])  # (t, s, s, 3)
            lr = np.stack([degrade(f, settings.jpeg_quality) for f in hr])  # (t, s/2, s/2, 3)
            _write_segment(folder, hr, lr)
        print(f"{meta['clip_id']}: {len(starts)} segment(s), crop {side:.0f} px, {'test' if test else 'train'}", flush=True)
    index = {"format_version": SR_FORMAT_VERSION, "created_from": str(prepared), "videos": str(videos),
             "settings": asdict(settings),
             "degradation": f"INTER_AREA 2x downsample, then JPEG quality {settings.jpeg_quality}",
             "segments": segments, "skipped_small_crop": skipped}
    atomic_write_json(out / SR_DATASET_FILE, index)
    return index
