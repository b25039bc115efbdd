"""On-disk layout of a prepared dataset, and its reader.

::

    DATASET/
      dataset.json          format version, preparation config, class list, landmark layout
      manifest.csv          one row per finished clip: identity, clip_id, num_frames, split, path
      report.json           summary of the last run (problems per clip)
      reports/<key>.json    one record per processed clip (written as each clip ends)
      clips/IDENTITY/CLIP/
        meta.json           source, fps, crop box, sampled frame indices and times, problems
        frames/00000.jpg    RGB frames, square, ``size`` pixels
        segmentation/00000.png  uint8 class index per pixel (classes in dataset.json)
        landmarks.npz       ibug68 (F, 68, 2), dense (F, N, 3), confidence (F,), in crop pixels

A clip folder is first written under ``clips/.tmp-*`` and renamed into place when
complete, so a clip either exists whole or not at all. ``manifest.csv`` is rebuilt from
the clip folders (their ``meta.json`` is the truth), so concurrent shards never lose rows.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from talkinghead.config.prepare import DATASET_FILE
from talkinghead.utils.atomic import atomic_write_text
from talkinghead.errors import TalkingHeadError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.csv"
REPORT_FILE = "report.json"
REPORTS_DIR = "reports"
CLIPS_DIR = "clips"
META_FILE = "meta.json"
LANDMARKS_FILE = "landmarks.npz"
FRAMES_DIR = "frames"
SEGMENTATION_DIR = "segmentation"
TMP_PREFIX = ".tmp-"

MANIFEST_COLUMNS = ("identity", "clip_id", "num_frames", "split", "path")


class DatasetError(TalkingHeadError, RuntimeError):
    """A prepared dataset that is missing, incomplete or of another format."""


@dataclass(frozen=True)
class ClipRecord:
    """One row of ``manifest.csv``."""

    identity: str
    clip_id: str
    num_frames: int
    split: str
    path: str  # clip folder relative to the dataset root

    @property
    def key(self) -> str:
        return f"{self.identity}/{self.clip_id}"


def clip_key(identity: str, clip_id: str) -> str:
    """Unique name of a clip inside a dataset."""
    return f"{identity}/{clip_id}"


def clip_relpath(identity: str, clip_id: str) -> str:
    """Clip folder relative to the dataset root."""
    return f"{CLIPS_DIR}/{identity}/{clip_id}"


def frame_name(index: int, ext: str) -> str:
    """File name of the ``index``-th stored frame of a clip."""
    return f"{index:05d}.{ext}"


def is_finished_clip(folder: Path) -> bool:
    """Whether ``folder`` holds a complete clip (its meta.json is written last)."""
    return (folder / META_FILE).is_file() and (folder / LANDMARKS_FILE).is_file()


def scan_clip_metas(root: Path) -> list[dict]:
    """The ``meta.json`` of every finished clip under ``root``, sorted by clip key."""
    metas = []
    clips = root / CLIPS_DIR
    if not clips.is_dir():
        return metas
    for meta_path in sorted(clips.glob(f"*/*/{META_FILE}")):
        folder = meta_path.parent
        if folder.name.startswith(TMP_PREFIX) or not is_finished_clip(folder):
            continue
        metas.append(json.loads(meta_path.read_text()))
    return metas


def write_manifest(root: Path, metas: list[dict]) -> list[ClipRecord]:
    """Rewrite ``manifest.csv`` atomically from clip metadata."""
    records = [
        ClipRecord(
            identity=m["identity"],
            clip_id=m["clip_id"],
            num_frames=int(m["num_frames"]),
            split=m["split"],
            path=clip_relpath(m["identity"], m["clip_id"]),
        )
        for m in sorted(metas, key=lambda m: clip_key(m["identity"], m["clip_id"]))
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(asdict(record))
    atomic_write_text(root / MANIFEST_FILE, buffer.getvalue())
    return records


def read_manifest(root: Path) -> list[ClipRecord]:
    """Rows of ``manifest.csv``."""
    path = root / MANIFEST_FILE
    if not path.is_file():
        if (root / DATASET_FILE).is_file():
            raise DatasetError(
                f"{root}: has {DATASET_FILE} but no {MANIFEST_FILE} yet: the `talkinghead prepare` run writing it "
                "was interrupted before its end; run the same prepare command again to resume"
            )
        raise DatasetError(f"{root}: no {MANIFEST_FILE}; is this a folder written by `talkinghead prepare`?")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{path}: missing column(s) {sorted(missing)}")
        return [
            ClipRecord(r["identity"], r["clip_id"], int(r["num_frames"]), r["split"], r["path"])
            for r in reader
        ]


class PreparedClip:
    """Read access to one clip folder: frames, segmentation maps, landmarks, metadata."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not is_finished_clip(self.folder):
            raise DatasetError(f"{self.folder}: not a finished clip (no {META_FILE} / {LANDMARKS_FILE})")
        self.meta: dict = json.loads((self.folder / META_FILE).read_text())

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def image_ext(self) -> str:
        return self.meta["image_format"]

    @cached_property
    def _landmarks(self) -> dict[str, np.ndarray]:
        path = self.folder / LANDMARKS_FILE
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DatasetError(
                f"{path}: is damaged and cannot be read ({type(err).__name__}: {err}); delete the clip folder "
                f"{self.folder} and run `talkinghead prepare` again to rewrite it"
            ) from err

    @property
    def landmarks68(self) -> np.ndarray:
        """(F, 68, 2) float32 iBUG-68 points in crop pixel coordinates."""
        return self._landmarks["ibug68"]

    @property
    def dense_landmarks(self) -> np.ndarray:
        """(F, N, 3) float32 backend points (x, y in crop pixels; z in the same scale)."""
        return self._landmarks["dense"]

    @property
    def confidence(self) -> np.ndarray:
        """(F,) float32 per-frame face detection confidence."""
        return self._landmarks["confidence"]

    def frame_path(self, index: int) -> Path:
        return self.folder / FRAMES_DIR / frame_name(index, self.image_ext)

    def frame(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame ``index``."""
        path = self.frame_path(index)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{path}: missing or unreadable frame")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def has_segmentation(self) -> bool:
        return self.meta.get("segmentation_source") not in (None, "none")

    def segmentation(self, index: int) -> np.ndarray:
        """(H, W) uint8 class index map of frame ``index``."""
        path = self.folder / SEGMENTATION_DIR / frame_name(index, "png")
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise DatasetError(f"{path}: missing or unreadable segmentation map")
        return labels

    @property
    def frame_roles(self) -> list[str] | None:
        """Per-frame role for evaluation layouts (``input``/``holdout``), else None."""
        return self.meta.get("frame_roles")


def missing_dataset_message(root: Path) -> str:
    """Why ``root`` is not a prepared dataset, and the prepare command that makes one.

    The suggested OUTPUT is never ``root``'s own raw clips folder: writing a dataset over
    (or into) the videos it is made from is how datasets got mixed with their sources.
    """
    from talkinghead.data.media_info import is_image_file, is_video_file

    holds_media = root.is_dir() and any(
        is_video_file(p) or is_image_file(p) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    if holds_media:
        target = root.parent / f"{root.name}_prepared"
        return (
            f"{root}: no {DATASET_FILE}; it holds raw videos or images, not a prepared dataset. Prepare them into "
            f"a new folder with `talkinghead prepare {root} {target}` and use {target}"
        )
    return (
        f"{root}: no {DATASET_FILE}; prepare the data first with `talkinghead prepare VIDEOS {root}` "
        f"(VIDEOS: the folder of raw videos, not {root} itself)"
    )


class PreparedDataset:
    """A dataset written by ``talkinghead prepare``: its info, manifest and clips."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / DATASET_FILE
        if not info_path.is_file():
            raise DatasetError(missing_dataset_message(self.root))
        self.info: dict = json.loads(info_path.read_text())
        version = self.info.get("format_version")
        if version != FORMAT_VERSION:
            raise DatasetError(
                f"{info_path}: dataset format version {version}, this talkinghead reads version "
                f"{FORMAT_VERSION}; prepare the data again with this version"
            )
        self.records: list[ClipRecord] = read_manifest(self.root)

    @property
    def classes(self) -> list[str]:
        """Names of the segmentation classes (index = label value)."""
        return list(self.info["segmentation"]["classes"])

    @property
    def size(self) -> int:
        return int(self.info["config"]["size"])

    def split(self, name: str | None) -> list[ClipRecord]:
        """Records of one split (``train``/``test``), or all when ``name`` is None."""
        return [r for r in self.records if name is None or r.split == name]

    def identities(self, split: str | None = None) -> list[str]:
        """Sorted distinct identities (of one split)."""
        return sorted({r.identity for r in self.split(split)})

    def clip(self, record: ClipRecord) -> PreparedClip:
        return PreparedClip(self.root / record.path)

    def report(self) -> dict | None:
        """The last run's ``report.json``, when present."""
        path = self.root / REPORT_FILE
        return json.loads(path.read_text()) if path.is_file() else None
