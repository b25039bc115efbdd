"""``talkinghead prepare``: raw talking-head videos to a training/evaluation dataset.

Per clip (LSR appendix A.1, FSTH §3.1): decode, sample frames uniformly in time, detect
the face and its landmarks, crop one stable square around the head, resize, draw the
oracle segmentation, and write the clip atomically. Problems are recorded per clip and
the batch goes on. Re-running skips finished clips, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkinghead.config.base import to_dict
from talkinghead.config.prepare import PrepareConfig
from talkinghead.data import dataset_format as fmt
from talkinghead.data.crop import center_square_box, clip_crop_box, crop_image, points_to_crop, shift_inside
from talkinghead.data.landmark_segmentation import LANDMARK_ORACLE_CLASSES, landmark_segmentation
from talkinghead.data.landmarks.base import FaceTrack
from talkinghead.data.landmarks.factory import create_landmarker, num_dense_points
from talkinghead.data.segmentation_classes import CELEBAMASK_CLASSES
from talkinghead.data.sources import ClipSource, discover_clips, shard_clips
from talkinghead.data.frame_source import open_frame_source
from talkinghead.data.media_info import VideoReadError, sample_frame_indices
from talkinghead.utils.atomic import atomic_write_json
from talkinghead.errors import InputNotFoundError, TalkingHeadError
from talkinghead.utils.output_guard import check_output_location, check_writable

log = logging.getLogger(__name__)

# Frames kept in memory between detection and writing; above this a clip is decoded twice.
FRAME_MEMORY_BUDGET = 512 * 1024 * 1024


class PrepareError(TalkingHeadError, RuntimeError):
    """The dataset folder cannot be (re)used with the requested settings."""


@dataclass
class RunOptions:
    """How a prepare run executes (nothing here changes what is written).

    Args:
        workers: parallel processes, one clip at a time each.
        shard: ``(index, count)`` to process only a deterministic slice of the clips.
        strict: exit non-zero when any clip failed or lost frames.
        retry_failed: process again clips that failed in an earlier run.
        progress: show a progress bar.
    """

    workers: int = 1
    shard: tuple[int, int] | None = None
    strict: bool = False
    retry_failed: bool = False
    progress: bool = True


@dataclass
class PrepareSummary:
    """What a run did, for the terminal and for tests."""

    output: Path
    clips_total: int = 0
    clips_done: int = 0
    clips_skipped: int = 0
    clips_failed: int = 0
    frames_written: int = 0
    frames_dropped: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    dataset_clips: int = 0

    def exit_code(self, strict: bool) -> int:
        if self.dataset_clips == 0:
            return 1
        if strict and (self.clips_failed or self.frames_dropped):
            return 1
        return 0

    def format(self) -> str:
        fps = self.frames_written / self.seconds if self.seconds else 0.0
        lines = [
            f"prepared {self.output}",
            f"  clips: {self.clips_done} written, {self.clips_skipped} already done, "
            f"{self.clips_failed} failed (of {self.clips_total} in this run)",
            f"  frames: {self.frames_written} written, {self.frames_dropped} dropped",
            f"  time: {self.seconds:.1f}s ({fps:.1f} frames/s)",
            f"  dataset now holds {self.dataset_clips} clips",
        ]
        if self.failures:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items()))
            lines.append(f"  failures by reason: {reasons} (details in {self.output / fmt.REPORT_FILE})")
        if self.timings:
            total = sum(self.timings.values()) or 1.0
            parts = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in self.timings.items())
            lines.append(f"  time per stage: {parts}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- dataset info


def resolve_segmentation_source(config: PrepareConfig) -> str:
    """``landmarks``, ``face-parsing`` or ``none``; ``auto`` picks what is installed."""
    from talkinghead.weights import is_available

    if config.segmentation == "auto":
        if is_available("face_parsing"):
            return "face-parsing"
        log.warning(
            "segmentation: the face-parsing weights are not installed; using the landmark-derived "
            "oracle instead (see `talkinghead weights list`)"
        )
        return "landmarks"
    return config.segmentation


def dataset_info(config: PrepareConfig, segmentation_source: str) -> dict:
    """The content of ``dataset.json`` for these settings."""
    from talkinghead import __version__

    classes = list(CELEBAMASK_CLASSES) if segmentation_source != "none" else []
    used = (
        list(LANDMARK_ORACLE_CLASSES) if segmentation_source == "landmarks"
        else classes
    )
    return {
        "format_version": fmt.FORMAT_VERSION,
        "created_by": f"talkinghead {__version__}",
        "config": to_dict(config),
        "segmentation": {"source": segmentation_source, "classes": classes, "classes_used": used},
        "landmarks": {"backend": config.landmarks, "num_dense": num_dense_points(config.landmarks),
                      "layout68": "ibug"},
    }


def _describe_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _describe_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs


def init_dataset(output: Path, info: dict) -> bool:
    """Create ``dataset.json`` or check that an existing one has the same settings.

    Returns:
        True when this call created ``dataset.json`` (the folder held no dataset yet).
    """
    path = output / fmt.DATASET_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        keys = ("format_version", "config", "segmentation", "landmarks")
        diffs = _describe_differences({k: old.get(k) for k in keys}, {k: info.get(k) for k in keys})
        if diffs:
            raise PrepareError(
                f"{output} was prepared with other settings ({'; '.join(diffs)}). "
                "Clips made with different settings cannot share a dataset: write to a new OUTPUT "
                "folder, or run again with the settings stored in "
                f"{path} (`talkinghead print-config` shows yours)."
            )
        return False
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, info)
    return True


# ----------------------------------------------------------------------------- splits


def assign_splits(clips: list[ClipSource], config: PrepareConfig) -> dict[str, str]:
    """Identity -> ``train``/``test``; deterministic, disjoint identities.

    Computed from every discovered clip (before sharding), so all shards agree.
    """
    identities = sorted({c.identity for c in clips})
    if config.layout == "fsth-eval":
        return {i: "test" for i in identities}
    if config.split_by == "none" or config.test_fraction == 0:
        return {i: "train" for i in identities}

    def rank(identity: str) -> str:
        return hashlib.sha256(f"{config.split_seed}:{identity}".encode()).hexdigest()

    ordered = sorted(identities, key=rank)
    num_test = int(round(len(ordered) * config.test_fraction))
    if len(ordered) >= 2:
        num_test = min(max(num_test, 1), len(ordered) - 1)
    test = set(ordered[:num_test])
    return {i: ("test" if i in test else "train") for i in identities}


# ----------------------------------------------------------------------------- per-process state


class _Workers:
    """Detectors built once per process (they are not picklable)."""

    landmarker = None
    person = None
    parser = None
    key: tuple | None = None


def _tools(config: PrepareConfig, segmentation_source: str):
    key = (config.landmarks, config.min_detection_confidence, segmentation_source)
    if _Workers.key != key:
        _Workers.landmarker = create_landmarker(config.landmarks, config.min_detection_confidence)
        _Workers.person = None
        _Workers.parser = None
        if segmentation_source == "landmarks":
            from talkinghead.data.person_mask import PersonSegmenter

            _Workers.person = PersonSegmenter()
        elif segmentation_source == "face-parsing":
            from talkinghead.data.face_parsing_segmenter import FaceParsingSegmenter

            _Workers.parser = FaceParsingSegmenter.from_registry()
        _Workers.key = key
    return _Workers


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


# ----------------------------------------------------------------------------- one clip


def _report_path(output: Path, key: str) -> Path:
    return output / fmt.REPORTS_DIR / (key.replace("/", "__") + ".json")


def _looks_grayscale(image: np.ndarray) -> bool:
    sample = image[::8, ::8].astype(np.int16)
    return bool(np.abs(sample[..., 0] - sample[..., 1]).max() <= 2 and np.abs(sample[..., 1] - sample[..., 2]).max() <= 2)


def process_clip(clip: ClipSource, output: Path, config: PrepareConfig, segmentation_source: str,
                 split: str) -> dict:
    """Prepare one clip; returns its report record (never raises for bad input)."""
    key = fmt.clip_key(clip.identity, clip.clip_id)
    record: dict = {"clip": key, "source": clip.source, "status": "failed", "problems": [],
                    "frames_written": 0, "frames_dropped": 0, "timings": {}}
    timings = {"decode": 0.0, "detect": 0.0, "segment": 0.0, "write": 0.0}
    tmp_dir: Path | None = None
    try:
        tmp_dir = _process_clip(clip, output, config, segmentation_source, split, record, timings)
    except VideoReadError as err:
        record["problems"].append({"reason": err.reason, "detail": str(err)})
    except Exception as err:  # a bug or an unexpected file: record it, keep the batch going
        log.exception("clip %s failed unexpectedly", key)
        record["problems"].append({"reason": "error", "detail": f"{type(err).__name__}: {err}"})
    finally:
        if tmp_dir is not None and tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    record["timings"] = {k: round(v, 4) for k, v in timings.items()}
    atomic_write_json(_report_path(output, key), record)
    return record


@dataclass
class _Detections:
    """What reading a clip and detecting its faces found (step 1 of :func:`_process_clip`)."""

    info: Any
    indices: list[int]
    found: dict[int, Any] = field(default_factory=dict)  # frame index -> the followed face
    timestamps: dict[int, float] = field(default_factory=dict)
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # kept when they fit in memory
    dropped: list[dict] = field(default_factory=list)
    many_faces: int = 0
    grayscale: bool = False
    keep_in_memory: bool = True


def _open_clip(clip: ClipSource, config: PrepareConfig):
    return open_frame_source(clip.paths if clip.kind == "images" else clip.paths[0], fps=config.image_sequence_fps)


def _detect_faces(clip: ClipSource, config: PrepareConfig, tools, problems: list, timings: dict) -> _Detections:
    """Decode the sampled frames and follow one face through them (frames without a usable face are dropped)."""
    t0 = time.perf_counter()
    source = _open_clip(clip, config)
    info = source.info
    if config.layout == "fsth-eval":
        indices = list(range(info.num_frames))
    else:
        indices = sample_frame_indices(info.timestamps, config.frames_per_clip)
    if info.truncated:
        problems.append({"reason": "truncated", "frame": info.num_frames,
                         "detail": f"{clip.source}: {info.truncated}; using the {info.num_frames} frames before it"})
    timings["decode"] += time.perf_counter() - t0

    result = _Detections(info, indices, grayscale=info.is_grayscale,
                         keep_in_memory=len(indices) * info.width * info.height * 3 <= FRAME_MEMORY_BUDGET)
    track = FaceTrack(config.face_index)
    frame_iter = source.frames(indices)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(frame_iter)
        except StopIteration:
            timings["decode"] += time.perf_counter() - t0
            break
        except VideoReadError as err:
            timings["decode"] += time.perf_counter() - t0
            if err.reason != "truncated":
                raise
            if not any(p["reason"] == "truncated" for p in problems):
                problems.append({"reason": "truncated", "frame": err.frames_read, "detail": str(err)})
            break
        index, stamp, image = item
        timings["decode"] += time.perf_counter() - t0
        if not result.grayscale and not result.found and _looks_grayscale(image):
            result.grayscale = True
        t0 = time.perf_counter()
        faces = tools.landmarker.detect(image)
        timings["detect"] += time.perf_counter() - t0
        if len(faces) > 1:
            result.many_faces += 1
        face = track.choose(faces)
        if face is None:
            reason = "face_index_out_of_range" if faces else "no_face"
            result.dropped.append({"frame": index, "reason": reason})
            continue
        if face.confidence < config.min_detection_confidence:
            result.dropped.append({"frame": index, "reason": "low_confidence", "confidence": round(face.confidence, 3)})
            continue
        if face.size < config.min_face_size:
            result.dropped.append({"frame": index, "reason": "tiny_face", "face_size": round(face.size, 1)})
            continue
        result.found[index] = face
        result.timestamps[index] = stamp
        if result.keep_in_memory:
            result.frames[index] = image
    return result


def _check_detections(detections: _Detections, config: PrepareConfig, problems: list, record: dict) -> bool:
    """Record the clip-level problems; False when too few frames are usable to write the clip."""
    if detections.grayscale:
        problems.append({"reason": "grayscale", "detail": "grayscale source; frames stored as 3-channel RGB"})
    if detections.many_faces:
        problems.append({"reason": "multiple_faces", "frames": detections.many_faces,
                         "detail": f"several faces in {detections.many_faces} frame(s); "
                                   f"followed face_index={config.face_index}"})
    record["frames_dropped"] = len(detections.dropped)
    record["dropped_frames"] = detections.dropped
    good = sorted(detections.found)
    if len(good) >= config.min_frames:
        return True
    counts: dict[str, int] = {}
    for d in detections.dropped:
        counts[d["reason"]] = counts.get(d["reason"], 0) + 1
    main = max(counts, key=counts.get) if counts else "too_few_frames"
    reason = main if not good else "too_few_frames"
    problems.append({"reason": reason, "detail": f"{len(good)} usable frame(s) of {len(detections.indices)} sampled, "
                     f"{config.min_frames} needed; dropped: {counts}"})
    return False


def _crop_box(detections: _Detections, config: PrepareConfig) -> np.ndarray:
    """One square crop for the whole clip (around the head over every frame, or the centre square).

    A head box past the frame's border is shifted inside it, as at inference
    (:func:`talkinghead.inference.source.crop_box_for`), so the crops have no black bands
    where the video has pixels.
    """
    if config.crop.mode == "head":
        boxes = np.stack([detections.found[i].box for i in sorted(detections.found)])
        box = clip_crop_box(boxes, config.crop.scale, config.crop.vertical_offset)
        return shift_inside(box, detections.info.width, detections.info.height)
    return center_square_box(detections.info.width, detections.info.height)


def _write_frames(clip: ClipSource, detections: _Detections, box: np.ndarray, tmp_dir: Path, config: PrepareConfig,
                  segmentation_source: str, tools, timings: dict) -> dict[str, list]:
    """Crop, draw the segmentation of and write every usable frame into ``tmp_dir``; returns their landmarks."""
    good = sorted(detections.found)
    if detections.keep_in_memory:
        images = ((i, detections.frames[i]) for i in good)
    else:
        images = ((i, img) for i, _, img in _open_clip(clip, config).frames(good))
    size, ext = config.size, config.image_format
    out: dict[str, list] = {"dense": [], "ibug68": [], "confidence": [], "indices": []}
    params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    for out_index, (index, image) in enumerate(images):
        face = detections.found[index]
        crop = crop_image(image, box, size)
        dense = points_to_crop(face.dense, box, size)
        ibug = points_to_crop(face.ibug68, box, size)
        if segmentation_source != "none":
            t0 = time.perf_counter()
            if segmentation_source == "landmarks":
                labels = landmark_segmentation(ibug, size, tools.person.mask(crop))
            else:
                labels = tools.parser.segment(crop)
            timings["segment"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        name = fmt.frame_name(out_index, ext)
        if not cv2.imwrite(str(tmp_dir / fmt.FRAMES_DIR / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"could not write {tmp_dir / fmt.FRAMES_DIR / name}")
        if segmentation_source != "none":
            cv2.imwrite(str(tmp_dir / fmt.SEGMENTATION_DIR / fmt.frame_name(out_index, "png")), labels)
        timings["write"] += time.perf_counter() - t0
        out["dense"].append(dense)
        out["ibug68"].append(ibug)
        out["confidence"].append(face.confidence)
        out["indices"].append(index)
    return out


def _clip_meta(clip: ClipSource, detections: _Detections, box: np.ndarray, written: list[int], config: PrepareConfig,
               segmentation_source: str, split: str, problems: list) -> dict:
    """The clip's ``meta.json``."""
    info = detections.info
    return {
        "format_version": fmt.FORMAT_VERSION,
        "identity": clip.identity,
        "clip_id": clip.clip_id,
        "split": split,
        "source": clip.source,
        "source_kind": clip.kind,
        "source_size": [info.width, info.height],
        "fps": info.fps,
        "num_frames": len(written),
        "size": config.size,
        "image_format": config.image_format,
        "crop_box": [round(float(v), 3) for v in box],
        "crop_mode": config.crop.mode,
        "frame_indices": written,
        "timestamps": [round(float(detections.timestamps[i]), 5) for i in written],
        "frame_roles": [clip.frame_roles[i] for i in written] if clip.frame_roles else None,
        "landmark_backend": config.landmarks,
        "segmentation_source": segmentation_source,
        "dropped_frames": detections.dropped,
        "problems": problems,
    }


def _process_clip(clip: ClipSource, output: Path, config: PrepareConfig, segmentation_source: str,
                  split: str, record: dict, timings: dict) -> Path | None:
    """Read, detect, crop and write one clip; it appears at its final path only when complete."""
    tools = _tools(config, segmentation_source)
    problems = record["problems"]
    detections = _detect_faces(clip, config, tools, problems, timings)
    if not _check_detections(detections, config, problems, record):
        return None
    box = _crop_box(detections, config)

    clip_dir = output / fmt.clip_relpath(clip.identity, clip.clip_id)
    tmp_dir = clip_dir.parent / f"{fmt.TMP_PREFIX}{clip.clip_id}-{socket.gethostname()}-{os.getpid()}"
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    (tmp_dir / fmt.FRAMES_DIR).mkdir(parents=True)
    if segmentation_source != "none":
        (tmp_dir / fmt.SEGMENTATION_DIR).mkdir()
    written = _write_frames(clip, detections, box, tmp_dir, config, segmentation_source, tools, timings)

    t0 = time.perf_counter()
    np.savez(
        tmp_dir / fmt.LANDMARKS_FILE,
        dense=np.stack(written["dense"]).astype(np.float32),
        ibug68=np.stack(written["ibug68"]).astype(np.float32),
        confidence=np.asarray(written["confidence"], dtype=np.float32),
    )
    meta = _clip_meta(clip, detections, box, written["indices"], config, segmentation_source, split, problems)
    # meta.json last: its presence marks the clip complete (see dataset_format.is_finished_clip).
    atomic_write_json(tmp_dir / fmt.META_FILE, meta)
    if fmt.is_finished_clip(clip_dir):
        # Another shard or run finished this clip meanwhile; never replace a finished clip.
        record["status"] = "skipped"
        return tmp_dir
    if clip_dir.exists():
        shutil.rmtree(clip_dir)  # an unfinished leftover without meta.json
    os.replace(tmp_dir, clip_dir)
    timings["write"] += time.perf_counter() - t0
    record["status"] = "ok"
    record["frames_written"] = len(written["indices"])
    return None


def _process_clip_job(args) -> dict:
    return process_clip(*args)


# ----------------------------------------------------------------------------- the run


def _remove_stale_tmp_dirs(output: Path) -> None:
    """Delete temporary clip folders left by killed processes of this host."""
    host = socket.gethostname()
    for tmp in (output / fmt.CLIPS_DIR).glob(f"*/{fmt.TMP_PREFIX}*"):
        parts = tmp.name.rsplit("-", 2)
        if len(parts) != 3 or parts[1] != host or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive or pid == os.getpid():
            shutil.rmtree(tmp, ignore_errors=True)


def _previous_status(output: Path, key: str) -> str | None:
    path = _report_path(output, key)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("status")
    except json.JSONDecodeError:
        return None


def write_report(output: Path) -> dict:
    """Merge the per-clip records into ``report.json`` (atomically) and return it."""
    records = []
    for path in sorted((output / fmt.REPORTS_DIR).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            continue
    failures: dict[str, int] = {}
    for r in records:
        if r.get("status") == "failed":
            reason = r["problems"][-1]["reason"] if r.get("problems") else "unknown"
            failures[reason] = failures.get(reason, 0) + 1
    report = {
        "clips_ok": sum(r.get("status") == "ok" for r in records),
        "clips_failed": sum(r.get("status") == "failed" for r in records),
        "frames_dropped": sum(int(r.get("frames_dropped", 0)) for r in records),
        "failures_by_reason": failures,
        "clips": {r["clip"]: r for r in records},
    }
    atomic_write_json(output / fmt.REPORT_FILE, report)
    return report


def _discover(input_path: Path, output: Path, config: PrepareConfig, options: RunOptions) -> tuple[list, dict, list]:
    """The clips to consider (this shard's), the identity split of every identity, and discovery problems."""
    if not input_path.exists():
        raise InputNotFoundError(f"{input_path}: input does not exist (give a video, an image folder or a folder of videos)")
    # OUTPUT may lie inside INPUT (discovery skips it and any other prepared dataset), but
    # must not be INPUT itself nor hold it; its folder must take new files.
    check_output_location(output, {"input": input_path}, option="OUTPUT", may_be_inside=("input",))
    check_writable(output, option="OUTPUT")
    clips, discovery_problems = discover_clips(input_path, layout=config.layout, identity_from=config.identity_from,
                                               exclude=[output])
    if not clips:
        raise PrepareError(
            f"{input_path}: no videos or image folders found (video extensions: mp4, mov, avi, mkv, webm; "
            "images: png, jpg); for the FSTH evaluation subset pass --layout fsth-eval"
        )
    splits = assign_splits(clips, config)
    if options.shard is not None:
        clips = shard_clips(clips, *options.shard)
    return clips, splits, discovery_problems


def _checked_segmentation_source(config: PrepareConfig) -> str:
    """The segmentation source; face parsing's weights are loaded once here, so a wrong file fails before any clip."""
    segmentation_source = resolve_segmentation_source(config)
    if segmentation_source == "face-parsing":
        from talkinghead.weights import require

        require("face_parsing", "segmentation: face-parsing")
        from talkinghead.data.face_parsing_segmenter import FaceParsingSegmenter

        FaceParsingSegmenter.from_registry()
    return segmentation_source


def _jobs(clips: list, splits: dict, output: Path, config: PrepareConfig, segmentation_source: str, created: bool,
          options: RunOptions, summary: PrepareSummary) -> list[tuple]:
    """``process_clip`` arguments of every clip still to do; finished (and earlier failed) clips count as skipped."""
    todo = []
    for clip in clips:
        key = fmt.clip_key(clip.identity, clip.clip_id)
        if fmt.is_finished_clip(output / fmt.clip_relpath(clip.identity, clip.clip_id)):
            summary.clips_skipped += 1
        elif not options.retry_failed and not created and _previous_status(output, key) == "failed":
            # (failures recorded before dataset.json existed came from a run whose settings
            # were never kept, see below: they are retried)
            summary.clips_skipped += 1
        else:
            todo.append((clip, output, config, segmentation_source, splits[clip.identity]))
    return todo


class _Progress:
    """Counts each finished clip's record into the summary and the timings, and shows it on the bar."""

    def __init__(self, summary: PrepareSummary, total: int, show: bool, start: float):
        from tqdm import tqdm

        self.summary, self.start, self.timings = summary, start, {}
        self.bar = tqdm(total=total, unit="clip", disable=not show, dynamic_ncols=True)

    def account(self, record: dict) -> None:
        summary, bar = self.summary, self.bar
        if record["status"] == "ok":
            summary.clips_done += 1
        elif record["status"] == "skipped":
            summary.clips_skipped += 1
        else:
            summary.clips_failed += 1
            reason = record["problems"][-1]["reason"] if record["problems"] else "unknown"
            summary.failures[reason] = summary.failures.get(reason, 0) + 1
            bar.write(f"failed: {record['clip']} ({record['source']}): "
                      f"{record['problems'][-1]['detail'] if record['problems'] else reason}")
        summary.frames_written += record["frames_written"]
        summary.frames_dropped += record["frames_dropped"]
        for k, v in record["timings"].items():
            self.timings[k] = self.timings.get(k, 0.0) + v
        elapsed = time.perf_counter() - self.start
        bar.set_postfix(clips_s=f"{bar.n / elapsed:.2f}", frames_s=f"{summary.frames_written / elapsed:.1f}",
                        failed=summary.clips_failed)
        bar.update(1)


def _run_jobs(todo: list[tuple], workers: int, progress: _Progress) -> None:
    """Every job, in this process or in a pool of ``workers`` spawned processes."""
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            progress.account(process_clip(*job))
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        for record in pool.imap_unordered(_process_clip_job, todo):
            progress.account(record)


def _finish(output: Path, created: bool, summary: PrepareSummary, progress: _Progress) -> None:
    """Write the manifest and report of every clip in the folder (also after an interruption)."""
    progress.bar.close()
    metas = fmt.scan_clip_metas(output)
    if created and not metas:
        # A run that produced nothing must not pin the folder to its settings: the next
        # run (after fixing weights or options) may use other ones.
        (output / fmt.DATASET_FILE).unlink(missing_ok=True)
    fmt.write_manifest(output, metas)
    write_report(output)
    summary.dataset_clips = len(metas)
    summary.timings = progress.timings
    summary.seconds = time.perf_counter() - progress.start


def prepare_dataset(input_path: str | Path, output: str | Path, config: PrepareConfig,
                    options: RunOptions | None = None) -> PrepareSummary:
    """Prepare every clip under ``input_path`` into the dataset folder ``output``."""
    options = options or RunOptions()
    input_path, output = Path(input_path), Path(output)
    start = time.perf_counter()
    clips, splits, discovery_problems = _discover(input_path, output, config, options)
    segmentation_source = _checked_segmentation_source(config)
    created = init_dataset(output, dataset_info(config, segmentation_source))
    _remove_stale_tmp_dirs(output)
    summary = PrepareSummary(output=output, clips_total=len(clips))
    todo = _jobs(clips, splits, output, config, segmentation_source, created, options, summary)
    for problem in discovery_problems:
        log.warning("skipped %s: %s", problem.get("path"), problem.get("reason"))
    progress = _Progress(summary, len(todo), options.progress, start)
    try:
        _run_jobs(todo, options.workers, progress)
    finally:
        _finish(output, created, summary, progress)
    return summary
