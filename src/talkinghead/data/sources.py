"""Discovering the clips of a dataset input, and splitting them into shards.

An input is a single video or image, or a folder searched at any depth:

* every video file is a clip;
* every folder that directly holds images and no video is an image-sequence clip;
* hidden files and folders (``.name``) are skipped, other unknown files silently ignored;
* a prepared dataset (a folder holding ``dataset.json``) and the folders given as
  ``exclude`` (the prepare run's own output) are never searched, so a dataset written
  inside its input is not read back as new clips on the next run.

Identities and clip ids come from the path relative to the input root (``identity_from``):

==========================================  ==========================  ===================
relative path                               identity                    clip_id
==========================================  ==========================  ===================
``clip.mp4``                                ``clip``                    ``clip``
``identity/clip.mp4``                       ``identity``                ``clip``
``identity/video/clip.mp4`` (VoxCeleb2)     ``identity``                ``video_clip``
``a/b/c/clip.mp4``                          ``a``                       ``b_c_clip``
==========================================  ==========================  ===================

The ``fsth-eval`` layout is the few-shot talking-head evaluation split,
``ROOT/{train,test}/IDENTITY/VIDEO/combined/NNNNN_rgb.png``: ``train`` holds the K input
frames of a video, ``test`` the hold-out frames of the same video. It is used only when
asked for (``layout="fsth-eval"``); searched with ``layout="auto"``, such a root gives a
problem record suggesting it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

from talkinghead.data.dataset_format import DATASET_FILE, clip_key
from talkinghead.data.image_sequence import natural_sorted
from talkinghead.data.media_info import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, PathLike, is_image_file, is_video_file
from talkinghead.errors import InputNotFoundError, InvalidInputError

log = logging.getLogger(__name__)

Layout = Literal["auto", "fsth-eval"]
IdentityFrom = Literal["auto", "parent", "stem"]
LAYOUTS = ("auto", "fsth-eval")
IDENTITY_FROM = ("auto", "parent", "stem")

FSTH_SPLITS = ("train", "test")  # K-shot inputs, hold-out frames
FSTH_FRAMES_DIR = "combined"
FSTH_FRAME_SUFFIX = "_rgb"
FSTH_LAYOUT = "ROOT/{train,test}/IDENTITY/VIDEO/combined/NNNNN_rgb.png"

MAX_ID_LENGTH = 100
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

Problem = dict[str, str]


@dataclass
class ClipSource:
    """One clip found in a dataset input, before any decoding.

    Attributes:
        identity: person id (a safe folder name).
        clip_id: clip id, unique within the identity (a safe folder name).
        kind: ``"video"`` (``paths`` is one video file) or ``"images"`` (ordered frames).
        paths: the video file, or the image files in frame order.
        frame_roles: per image ``"input"`` or ``"holdout"`` (``fsth-eval`` only), else None.
        source: where the clip came from, relative to the input root, for reports.
    """

    identity: str
    clip_id: str
    kind: Literal["video", "images"]
    paths: list[Path]
    frame_roles: list[str] | None = None
    source: str = ""

    @property
    def key(self) -> str:
        """``identity/clip_id``, the clip's unique name in a dataset."""
        return clip_key(self.identity, self.clip_id)


def sanitize_id(text: str) -> str:
    """Turn ``text`` into a safe folder name.

    Accents are folded to ASCII (``Zoë`` -> ``Zoe``); every run of characters other than
    ASCII letters, digits, ``-``, ``_`` and ``.`` becomes ``_``; leading dots are removed
    (no hidden folders, no ``..``). Names longer than :data:`MAX_ID_LENGTH` are cut and
    end in a short hash of the original, so distinct long names stay distinct.
    """
    folded = "".join(
        char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char)
    )
    safe = _UNSAFE_ID_CHARS.sub("_", folded).lstrip(".")
    if not safe:
        safe = "_"
    if len(safe) > MAX_ID_LENGTH:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        safe = f"{safe[: MAX_ID_LENGTH - 9]}-{digest}"
    return safe


def _ids_from_relative(
    parts: tuple[str, ...], parent_name: str, identity_from: str
) -> tuple[str, str]:
    """``(identity, clip_id)`` from a clip's relative path parts (the last one a stem)."""
    stem = parts[-1]
    if identity_from == "parent":
        return parent_name, stem
    if identity_from == "stem":
        return stem, stem
    if len(parts) == 1:
        return stem, stem
    if len(parts) == 2:
        return parts[0], stem
    return parts[0], "_".join(parts[1:])


def _walk(root: Path, problems: list[Problem], exclude: frozenset[str] = frozenset()
          ) -> Iterator[tuple[Path, list[Path]]]:
    """Yield ``(folder, files)`` for ``root`` and every folder below it, depth first in
    name order, following symbolic links but never visiting a folder twice, nor a prepared
    dataset, nor a folder whose real path is in ``exclude``."""
    stack = [root]
    visited: set[str] = set()
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in visited:
            problems.append({
                "path": str(folder),
                "reason": f"skipped: links to {real}, which was already searched",
            })
            continue
        visited.add(real)
        if real in exclude:
            problems.append({"path": str(folder), "reason": "skipped: the output folder of this run"})
            continue
        if folder != root and (folder / DATASET_FILE).is_file():
            problems.append({
                "path": str(folder),
                "reason": f"skipped: a prepared dataset (holds {DATASET_FILE}), not raw clips",
            })
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            problems.append({
                "path": str(folder),
                "reason": f"unreadable directory ({error.strerror or error}); fix its permissions",
            })
            continue
        files: list[Path] = []
        subfolders: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                if entry.is_dir():
                    subfolders.append(path)
                elif entry.is_file():
                    files.append(path)
                elif entry.is_symlink() and (is_video_file(path) or is_image_file(path)):
                    problems.append({
                        "path": str(path),
                        "reason": "broken symbolic link; its target does not exist",
                    })
            except OSError as error:
                problems.append({"path": str(path), "reason": f"cannot stat ({error.strerror})"})
        yield folder, files
        stack.extend(reversed(subfolders))


def _discover_tree(root: Path, identity_from: str, problems: list[Problem],
                   exclude: frozenset[str] = frozenset()) -> list[ClipSource]:
    clips: list[ClipSource] = []
    for folder, files in _walk(root, problems, exclude):
        videos = [path for path in files if is_video_file(path)]
        images = [path for path in files if is_image_file(path)]
        for video in videos:
            parts = video.with_suffix("").relative_to(root).parts
            identity, clip_id = _ids_from_relative(parts, video.parent.name, identity_from)
            clips.append(ClipSource(
                identity=identity,
                clip_id=clip_id,
                kind="video",
                paths=[video],
                source=video.relative_to(root).as_posix(),
            ))
        if images and videos:
            problems.append({
                "path": str(folder),
                "reason": f"{len(images)} image files ignored: the folder also holds videos, "
                "so it is not an image sequence; move the images to their own folder",
            })
        elif images:
            # The root folder itself counts as one path part, named after the folder.
            parts = folder.relative_to(root).parts or (root.name,)
            identity, clip_id = _ids_from_relative(parts, folder.parent.name, identity_from)
            relative = folder.relative_to(root).as_posix()
            clips.append(ClipSource(
                identity=identity,
                clip_id=clip_id,
                kind="images",
                paths=natural_sorted(images),
                source=relative,
            ))
    return clips


def _discover_file(path: Path, identity_from: str) -> list[ClipSource]:
    if is_video_file(path):
        kind = "video"
    elif is_image_file(path):
        kind = "images"
    else:
        raise InvalidInputError(
            f"{path}: not a video or image file; supported extensions are "
            f"{', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))}."
        )
    identity, clip_id = _ids_from_relative((path.stem,), path.parent.name, identity_from)
    return [
        ClipSource(identity=identity, clip_id=clip_id, kind=kind, paths=[path], source=path.name)
    ]


def is_fsth_eval_root(root: Path) -> bool:
    """Whether ``root`` looks like the ``fsth-eval`` layout: ``train`` and ``test`` folders,
    with at least one ``train/IDENTITY/VIDEO/combined`` folder."""
    if not all((root / split).is_dir() for split in FSTH_SPLITS):
        return False
    return any(path.is_dir() for path in (root / "train").glob(f"*/*/{FSTH_FRAMES_DIR}"))


def _fsth_frames(folder: Path) -> list[Path]:
    """The ``*_rgb`` images of a ``combined`` folder, in natural order."""
    return natural_sorted([
        path for path in folder.iterdir()
        if path.is_file() and is_image_file(path) and path.stem.endswith(FSTH_FRAME_SUFFIX)
    ])


def _discover_fsth_eval(root: Path, problems: list[Problem]) -> list[ClipSource]:
    if not is_fsth_eval_root(root):
        raise InvalidInputError(
            f"{root}: does not match the fsth-eval layout {FSTH_LAYOUT} (needs 'train' and "
            "'test' folders with IDENTITY/VIDEO/combined folders of *_rgb.png frames); "
            "point at the root of the evaluation split, or use layout='auto'."
        )
    videos: dict[tuple[str, str], dict[str, Path]] = {}
    for split in FSTH_SPLITS:
        for combined in sorted((root / split).glob(f"*/*/{FSTH_FRAMES_DIR}")):
            if combined.is_dir():
                video = combined.parent
                videos.setdefault((video.parent.name, video.name), {})[split] = combined
    clips: list[ClipSource] = []
    for (identity, video), folders in sorted(videos.items()):
        source = f"{identity}/{video}"
        missing = [split for split in FSTH_SPLITS if split not in folders]
        if missing:
            problems.append({
                "path": str(root / missing[0] / identity / video / FSTH_FRAMES_DIR),
                "reason": f"skipped {source}: no {missing[0]} frames (the layout needs both "
                "input frames in train/ and hold-out frames in test/)",
            })
            continue
        inputs = _fsth_frames(folders["train"])
        holdouts = _fsth_frames(folders["test"])
        empty = [split for split, frames in zip(FSTH_SPLITS, (inputs, holdouts)) if not frames]
        if empty:
            problems.append({
                "path": str(folders[empty[0]]),
                "reason": f"skipped {source}: no *{FSTH_FRAME_SUFFIX} images in the folder",
            })
            continue
        clips.append(ClipSource(
            identity=identity,
            clip_id=video,
            kind="images",
            paths=inputs + holdouts,
            frame_roles=["input"] * len(inputs) + ["holdout"] * len(holdouts),
            source=source,
        ))
    if not clips:
        raise InvalidInputError(
            f"{root}: has the fsth-eval folders but no complete IDENTITY/VIDEO with frames in "
            f"both train/ and test/ ({FSTH_LAYOUT}); check the extraction of the split."
        )
    return clips


def _distinct_identities(names: list[str]) -> dict[str, str]:
    """Each original identity name -> a safe folder name, distinct for distinct originals."""
    by_clean: dict[str, list[str]] = {}
    for name in names:
        by_clean.setdefault(sanitize_id(name), []).append(name)
    mapping = {}
    for clean, originals in by_clean.items():
        mapping[originals[0]] = clean
        for name in originals[1:]:
            mapping[name] = f"{clean}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:6]}"
        if len(originals) > 1:
            log.warning(
                "identities %s would all become %r after name clean-up; they are kept apart as %s",
                ", ".join(repr(n) for n in originals), clean, ", ".join(repr(mapping[n]) for n in originals),
            )
    return mapping


def _make_unique(clips: list[ClipSource]) -> list[ClipSource]:
    """Sanitise ids, sort by ``(identity, clip_id, source)`` and suffix repeats ``-2``, ``-3``…

    Two different identities whose names sanitise to one (``Zoë`` and ``Zoe``, ``a b`` and
    ``a_b``) are never merged: the first in sorted order keeps the clean name, the others get
    a short hash of their original name appended, and a warning names them.
    """
    identities = _distinct_identities(sorted({clip.identity for clip in clips}))
    for clip in clips:
        clip.identity = identities[clip.identity]
        clip.clip_id = sanitize_id(clip.clip_id)
    clips.sort(key=lambda clip: (clip.identity, clip.clip_id, clip.source))
    taken = {(clip.identity, clip.clip_id) for clip in clips}
    seen: set[tuple[str, str]] = set()
    for clip in clips:
        pair = (clip.identity, clip.clip_id)
        if pair in seen:
            number = 2
            while (clip.identity, f"{clip.clip_id}-{number}") in taken:
                number += 1
            clip.clip_id = f"{clip.clip_id}-{number}"
            taken.add((clip.identity, clip.clip_id))
            pair = (clip.identity, clip.clip_id)
        seen.add(pair)
    clips.sort(key=lambda clip: (clip.identity, clip.clip_id))
    return clips


def discover_clips(
    input_path: PathLike,
    layout: Layout = "auto",
    identity_from: IdentityFrom = "auto",
    exclude: Sequence[PathLike] = (),
) -> tuple[list[ClipSource], list[Problem]]:
    """Find the clips of a dataset input.

    Args:
        input_path: a video file, an image file or a folder (searched at any depth).
        layout: ``"auto"`` (files and folders as described in the module docstring) or
            ``"fsth-eval"`` (require that layout).
        identity_from: ``"auto"`` (by path depth, see the module docstring), ``"parent"``
            (the clip's parent folder name) or ``"stem"`` (the clip's file or folder name).
            The ``fsth-eval`` layout always takes ``IDENTITY`` and ``VIDEO`` from its path.
        exclude: folders never searched (``prepare`` passes its output folder).

    Returns:
        ``(clips, problems)``: clips sorted by ``(identity, clip_id)`` with safe and
        unique ids (repeats get ``-2``, ``-3``… in source order), and one
        ``{"path", "reason"}`` record per thing skipped for a reason worth reporting.

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
        ValueError: an unknown option, a single file of an unknown type, a root that
            does not match ``layout="fsth-eval"``, or a root that is a prepared dataset.
    """
    if layout not in LAYOUTS:
        raise InvalidInputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")
    if identity_from not in IDENTITY_FROM:
        raise InvalidInputError(
            f"unknown identity_from {identity_from!r}; choose one of {', '.join(IDENTITY_FROM)}."
        )
    # Absolute (links kept) so clip paths survive a change of working folder and the
    # root folder has a name even when given as ".".
    root = Path(input_path).absolute()
    if not root.exists():
        raise InputNotFoundError(f"{root}: dataset input does not exist; check the path.")
    problems: list[Problem] = []
    if root.is_dir() and (root / DATASET_FILE).is_file():
        raise InvalidInputError(
            f"{root}: is a dataset written by `talkinghead prepare` (it holds {DATASET_FILE}), not raw "
            "videos; give the folder of videos or images it was prepared from."
        )
    if layout == "fsth-eval":
        if not root.is_dir():
            raise InvalidInputError(f"{root}: the fsth-eval layout needs a folder ({FSTH_LAYOUT}).")
        clips = _discover_fsth_eval(root, problems)
    elif root.is_dir():
        if is_fsth_eval_root(root):
            problems.append({
                "path": str(root),
                "reason": f"looks like the fsth-eval layout ({FSTH_LAYOUT}) but was searched as "
                "plain folders; pass layout='fsth-eval' to pair the input and hold-out frames",
            })
        excluded = frozenset(os.path.realpath(path) for path in exclude)
        clips = _discover_tree(root, identity_from, problems, excluded)
    else:
        clips = _discover_file(root, identity_from)
    return _make_unique(clips), problems


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"I/N"`` (shard ``I`` of ``N``, ``0 <= I < N``) into ``(I, N)``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise InvalidInputError(
            f"invalid shard {text!r}: expected 'I/N' with 0 <= I < N, e.g. '0/4' for the first "
            "of four shards."
        )
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise InvalidInputError(
            f"invalid shard {text!r}: need N >= 1 and 0 <= I < N (shards count from 0), e.g. "
            f"'0/{max(count, 1)}'."
        )
    return index, count


def shard_of(key: str, num_shards: int) -> int:
    """The shard (``0 <= shard < num_shards``) a clip key belongs to, from a SHA-1 of the
    key, so it is the same on every machine and Python run."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def shard_clips(
    clips: Sequence[ClipSource], shard_index: int, num_shards: int
) -> list[ClipSource]:
    """The clips of shard ``shard_index`` out of ``num_shards``, in their given order.

    Each clip lands in exactly one shard, decided by a stable hash of its key, so array
    jobs can split a corpus without coordination or overlap.
    """
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise InvalidInputError(
            f"invalid shard {shard_index}/{num_shards}: need num_shards >= 1 and "
            "0 <= shard_index < num_shards."
        )
    return [clip for clip in clips if shard_of(clip.key, num_shards) == shard_index]


__all__ = [
    "FSTH_LAYOUT",
    "ClipSource",
    "discover_clips",
    "is_fsth_eval_root",
    "parse_shard",
    "sanitize_id",
    "shard_clips",
    "shard_of",
]
