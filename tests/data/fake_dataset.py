"""Small prepared datasets built from real videos, for the data tests.

:func:`build_fake_dataset` writes a folder in the exact on-disk format of
:mod:`talkinghead.data.dataset_format` (dataset.json, manifest.csv, report.json,
clips/IDENTITY/CLIP/{meta.json, frames/, segmentation/, landmarks.npz}) without running
the whole ``prepare`` pipeline: frames are decoded from the videos in
``../shared/data/real`` with OpenCV, meshed with mediapipe FaceMesh (478 points with
irises), cropped with one square box per clip and resized to a few dozen pixels. The
iBUG-68 points come from the mesh, the segmentation from the landmark oracle (no person
mask). Decoding and meshing are cached per process, so every variant of the dataset a
test session builds costs only the writing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkinghead.config.base import to_dict
from talkinghead.config.prepare import PrepareConfig
from talkinghead.data import dataset_format as fmt
from talkinghead.data.crop import clip_crop_box, crop_image, points_to_crop
from talkinghead.data.landmark_segmentation import LANDMARK_ORACLE_CLASSES, landmark_segmentation
from talkinghead.data.landmarks.ibug68 import dense_to_ibug68
from talkinghead.data.segmentation_classes import CELEBAMASK_CLASSES
from talkinghead.utils.atomic import atomic_write_json

REPO = Path(__file__).resolve().parents[2]
REAL_DATA = REPO.parent / "shared" / "data" / "real"


@dataclass(frozen=True)
class FakeClip:
    """One clip of the fake dataset: ``num_frames`` frames spread over part of a video.

    Args:
        identity: identity folder name.
        clip_id: clip folder name.
        video: file name in ``../shared/data/real``.
        start: first sampled position, as a fraction of the video's length.
        stop: end of the sampled span, as a fraction of the video's length.
        num_frames: frames sampled uniformly in ``[start, stop)``.
        split: ``train`` or ``test``.
    """

    identity: str
    clip_id: str
    video: str
    start: float
    stop: float
    num_frames: int
    split: str

    @property
    def key(self) -> str:
        return fmt.clip_key(self.identity, self.clip_id)


# Three identities; the first has two clips from the two halves of one video.
DEFAULT_CLIPS: tuple[FakeClip, ...] = (
    FakeClip("lp_d12", "first_half", "liveportrait_d12.mp4", 0.0, 0.5, 8, "train"),
    FakeClip("lp_d12", "second_half", "liveportrait_d12.mp4", 0.5, 1.0, 8, "train"),
    FakeClip("lp_d18", "full", "liveportrait_d18.mp4", 0.0, 1.0, 8, "train"),
    FakeClip("tpsmm", "driving", "tpsmm_driving.mp4", 0.0, 1.0, 8, "test"),
)

# A report.json as `prepare` writes it (see talkinghead.data.prepare.write_report), for
# the four default clips plus three failed ones.
_FAILED_CLIPS = {
    "ghost/no_face_video": "no_face",
    "ghost/another_empty_video": "no_face",
    "short/two_frames": "too_few_frames",
}


def require_real_data() -> Path:
    """The real test media folder; skips the calling test when it is absent."""
    if not (REAL_DATA / "manifest.csv").is_file():
        pytest.skip(f"real test media not found at {REAL_DATA} (needed to build the fake dataset)")
    return REAL_DATA


@functools.cache
def _face_mesh():
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.5
    )


@functools.cache
def _decode_and_mesh(video: str, indices: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float]:
    """Frames ``indices`` of ``video`` and their meshes: ((F, H, W, 3) RGB, (F, 478, 3) pixels, fps)."""
    path = REAL_DATA / video
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot open this video")
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
    wanted = set(indices)
    frames: dict[int, np.ndarray] = {}
    position = 0
    while len(frames) < len(wanted):
        if not capture.grab():
            raise RuntimeError(f"{path}: ended at frame {position}, before frames {sorted(wanted - set(frames))}")
        if position in wanted:
            ok, bgr = capture.retrieve()
            if not ok:
                raise RuntimeError(f"{path}: frame {position} could not be decoded")
            frames[position] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        position += 1
    capture.release()

    images = np.stack([frames[i] for i in indices])  # (F, H, W, 3)
    height, width = images.shape[1:3]
    meshes = []
    for index, image in zip(indices, images):
        result = _face_mesh().process(image)
        if not result.multi_face_landmarks:
            raise RuntimeError(f"{path}: mediapipe found no face in frame {index}; pick other frames")
        mesh = np.array([(p.x * width, p.y * height, p.z * width) for p in result.multi_face_landmarks[0].landmark])
        meshes.append(mesh)
    return images, np.stack(meshes).astype(np.float32), fps  # (F, 478, 3)


def _frame_indices(clip: FakeClip) -> tuple[int, ...]:
    capture = cv2.VideoCapture(str(REAL_DATA / clip.video))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if count < clip.num_frames:
        raise RuntimeError(f"{clip.video}: {count} frames, {clip.num_frames} wanted")
    first, stop = clip.start * count, clip.stop * count
    positions = first + (stop - first) * np.arange(clip.num_frames) / clip.num_frames
    return tuple(int(p) for p in positions)


@functools.cache
def cropped_clip(clip: FakeClip, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """A clip cropped to ``size``: ((F, s, s, 3) RGB, (F, 68, 2) iBUG, (F, 478, 3) mesh, crop facts)."""
    indices = _frame_indices(clip)
    images, meshes, fps = _decode_and_mesh(clip.video, indices)
    xy = meshes[..., :2]  # (F, 478, 2)
    boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)  # (F, 4)
    box = clip_crop_box(boxes, scale=1.8, vertical_offset=0.1)
    frames = np.stack([crop_image(image, box, size) for image in images])  # (F, s, s, 3)
    dense = points_to_crop(meshes, box, size)  # (F, 478, 3)
    ibug = np.stack([dense_to_ibug68(d) for d in dense])  # (F, 68, 2)
    facts = {
        "fps": fps,
        "source_size": [int(images.shape[2]), int(images.shape[1])],
        "crop_box": [round(float(v), 3) for v in box],
        "frame_indices": list(indices),
        "timestamps": [round(i / fps, 5) for i in indices],
    }
    return frames, ibug, dense, facts


def _write_clip(
    root: Path, clip: FakeClip, size: int, segmentation: bool, frame_roles: list[str] | None
) -> dict:
    frames, ibug, dense, facts = cropped_clip(clip, size)
    folder = root / fmt.clip_relpath(clip.identity, clip.clip_id)
    (folder / fmt.FRAMES_DIR).mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / fmt.FRAMES_DIR / fmt.frame_name(i, "jpg")), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if segmentation:
        (folder / fmt.SEGMENTATION_DIR).mkdir()
        for i, points in enumerate(ibug):
            labels = landmark_segmentation(points, size)  # (s, s) uint8
            cv2.imwrite(str(folder / fmt.SEGMENTATION_DIR / fmt.frame_name(i, "png")), labels)
    np.savez(
        folder / fmt.LANDMARKS_FILE,
        dense=dense.astype(np.float32),
        ibug68=ibug.astype(np.float32),
        confidence=np.ones(len(frames), dtype=np.float32),
    )
    if frame_roles is not None and len(frame_roles) != len(frames):
        raise ValueError(f"{clip.key}: {len(frame_roles)} frame roles for {len(frames)} frames")
    meta = {
        "format_version": fmt.FORMAT_VERSION,
        "identity": clip.identity,
        "clip_id": clip.clip_id,
        "split": clip.split,
        "source": str(REAL_DATA / clip.video),
        "source_kind": "video",
        "source_size": facts["source_size"],
        "fps": facts["fps"],
        "num_frames": len(frames),
        "size": size,
        "image_format": "jpg",
        "crop_box": facts["crop_box"],
        "crop_mode": "head",
        "frame_indices": facts["frame_indices"],
        "timestamps": facts["timestamps"],
        "frame_roles": frame_roles,
        "landmark_backend": "mediapipe",
        "segmentation_source": "landmarks" if segmentation else "none",
        "dropped_frames": [],
        "problems": [],
    }
    atomic_write_json(folder / fmt.META_FILE, meta)  # last: marks the clip finished
    return meta


def _report(metas: list[dict]) -> dict:
    """A report.json in the layout `prepare` writes, with three failed clips and two dropped frames."""
    records = {}
    for i, meta in enumerate(metas):
        key = fmt.clip_key(meta["identity"], meta["clip_id"])
        dropped = [{"frame": 3, "reason": "no_face"}, {"frame": 5, "reason": "low_confidence"}] if i == 0 else []
        records[key] = {
            "clip": key, "source": meta["source"], "status": "ok", "problems": [],
            "frames_written": meta["num_frames"], "frames_dropped": len(dropped), "dropped_frames": dropped,
        }
    for key, reason in _FAILED_CLIPS.items():
        records[key] = {
            "clip": key, "source": f"/videos/{key}.mp4", "status": "failed",
            "problems": [{"reason": reason, "detail": f"{key}: {reason}"}],
            "frames_written": 0, "frames_dropped": 0, "dropped_frames": [],
        }
    failures: dict[str, int] = {}
    for reason in _FAILED_CLIPS.values():
        failures[reason] = failures.get(reason, 0) + 1
    return {
        "clips_ok": len(metas),
        "clips_failed": len(_FAILED_CLIPS),
        "frames_dropped": sum(r["frames_dropped"] for r in records.values()),
        "failures_by_reason": failures,
        "clips": records,
    }


def build_fake_dataset(
    root: str | Path,
    clips: tuple[FakeClip, ...] = DEFAULT_CLIPS,
    size: int = 64,
    segmentation: bool = True,
    frame_roles: dict[str, list[str]] | None = None,
    report: bool = True,
) -> Path:
    """Write a prepared dataset of real frames under ``root`` (which must not hold one yet).

    Args:
        root: dataset folder to create.
        clips: the clips to write.
        size: side of the square frames in pixels.
        segmentation: write landmark-oracle segmentation maps (else ``source: none``).
        frame_roles: clip key -> per-frame roles (``input``/``holdout``) for evaluation layouts.
        report: write a ``report.json`` with failed clips and dropped frames.

    Returns:
        ``root``.
    """
    require_real_data()
    root = Path(root)
    if (root / fmt.DATASET_FILE).exists():
        raise FileExistsError(f"{root} already holds a dataset")
    config = PrepareConfig(
        frames_per_clip=max(c.num_frames for c in clips),
        landmarks="mediapipe",
        size=size,
        segmentation="landmarks" if segmentation else "none",
        split_by="identity",
    )
    source = "landmarks" if segmentation else "none"
    info = {  # as talkinghead.data.prepare.dataset_info writes it
        "format_version": fmt.FORMAT_VERSION,
        "created_by": "tests/data/fake_dataset.py",
        "config": to_dict(config),
        "segmentation": {
            "source": source,
            "classes": list(CELEBAMASK_CLASSES) if segmentation else [],
            "classes_used": list(LANDMARK_ORACLE_CLASSES) if segmentation else [],
        },
        "landmarks": {"backend": "mediapipe", "num_dense": 478, "layout68": "ibug"},
    }
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / fmt.DATASET_FILE, info)
    roles = frame_roles or {}
    metas = [_write_clip(root, clip, size, segmentation, roles.get(clip.key)) for clip in clips]
    fmt.write_manifest(root, metas)
    if report:
        atomic_write_json(root / fmt.REPORT_FILE, _report(metas))
    return root
