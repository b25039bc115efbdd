#!/usr/bin/env python3
"""Group talking-face clips into an IDENTITY/CLIP.mp4 folder of symlinks for `talkinghead prepare`.

`prepare --identity-from parent --split-by identity` needs one folder per person so that no person
lands in both the train and the test split. The clip folders this project ships are flat, so this
script reads their manifest.csv files and writes symbolic links (the data stays where it is):

    OUTPUT/IDENTITY/CLIP.mp4 -> SOURCE/CLIP.mp4

Identity rules, in order:
  * a clip whose `notes` column carries `identity=NAME` belongs to NAME;
  * a clip named in another manifest's notes as "CLIP in data/real" (the same person filmed twice)
    joins that other clip's identity, so one person cannot leak across the split;
  * any other clip is its own identity (its file stem).

Usage:
    python3 scripts/group_clips_by_identity.py OUTPUT SOURCE_DIR [SOURCE_DIR ...]
e.g.
    python3 scripts/group_clips_by_identity.py /work/data/tv_by_identity \
        ../shared/data/train_videos ../shared/data/real
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm"}
_IDENTITY_TAG = re.compile(r"identity=([A-Za-z0-9_\-]+)")
_SAME_AS_REAL = re.compile(r"([A-Za-z0-9_\-]+) in data/real")


def read_manifest(folder: Path) -> list[dict[str, str]]:
    """Rows of FOLDER/manifest.csv (empty when the folder has none)."""
    path = folder / "manifest.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assign_identities(folders: list[Path]) -> dict[Path, str]:
    """Map every video file under FOLDERS (top level only) to an identity name."""
    tags: dict[str, str] = {}        # clip stem -> identity from its own notes
    aliases: dict[str, str] = {}     # clip stem named in another clip's notes -> that identity
    for folder in folders:
        for row in read_manifest(folder):
            stem = Path(row.get("filename", "")).stem
            notes = row.get("notes", "") or ""
            tag = _IDENTITY_TAG.search(notes)
            if tag:
                tags[stem] = tag.group(1)
                for other in _SAME_AS_REAL.findall(notes):
                    aliases[other] = tag.group(1)
    result: dict[Path, str] = {}
    for folder in folders:
        for clip in sorted(folder.iterdir()):
            if clip.suffix.lower() not in VIDEO_SUFFIXES:
                continue
            result[clip] = tags.get(clip.stem) or aliases.get(clip.stem) or clip.stem
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="folder to write IDENTITY/CLIP links into")
    parser.add_argument("sources", type=Path, nargs="+", help="folders of clips (with manifest.csv)")
    args = parser.parse_args(argv)
    for folder in args.sources:
        if not folder.is_dir():
            print(f"error: {folder} is not a folder; pass the folders that hold the clips", file=sys.stderr)
            return 2
    mapping = assign_identities([s.resolve() for s in args.sources])
    seen: dict[Path, Path] = {}
    for clip, identity in mapping.items():
        link = args.output / identity / clip.name
        if link in seen:
            print(f"error: {clip} and {seen[link]} would both be linked as {link}; rename one", file=sys.stderr)
            return 2
        seen[link] = clip
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(clip, link)
    identities = sorted(set(mapping.values()))
    print(f"{len(mapping)} clips, {len(identities)} identities -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
