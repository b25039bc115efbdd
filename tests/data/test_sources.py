"""Tests for talkinghead.data.sources: finding clips in dataset inputs and sharding them.

Folder layouts are built in ``tmp_path`` from symbolic links (or small copies) to the real
files in ``../shared/data/real``; the fsth-eval fixture is made of real video frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from talkinghead.data import sources
from talkinghead.data.sources import (
    ClipSource,
    discover_clips,
    parse_shard,
    sanitize_id,
    shard_clips,
)
from talkinghead.data.video import read_video_frames

from real_inputs import real_file

# ---------------------------------------------------------------------------- helpers


def link(target: Path, path: Path) -> Path:
    """Symbolic link ``path`` -> ``target`` (a copy where links are not allowed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.symlink_to(target)
    except OSError:
        path.write_bytes(target.read_bytes())
    return path


def keys(clips: list[ClipSource]) -> list[tuple[str, str]]:
    return [(clip.identity, clip.clip_id) for clip in clips]


def real_frames(count: int, size: int = 224) -> list[np.ndarray]:
    """``count`` real video frames resized to ``size`` pixels, like the fsth-eval crops."""
    video = real_file("liveportrait_d12.mp4")
    frames = [rgb for _, _, rgb in read_video_frames(video, range(0, 10 * count, 10))]
    return [np.asarray(Image.fromarray(rgb).resize((size, size))) for rgb in frames]


def build_fsth_eval(root: Path, videos: dict[tuple[str, str], tuple[int, int]]) -> Path:
    """``root/{train,test}/IDENTITY/VIDEO/combined/NNNNN_rgb.png`` with (K, hold-out) frames."""
    needed = max(k + holdout for k, holdout in videos.values())
    frames = real_frames(needed, size=32)  # small crops keep the fixture fast
    for (identity, video), (num_inputs, num_holdouts) in videos.items():
        for split, numbers in (("train", range(num_inputs)),
                               ("test", range(num_inputs, num_inputs + num_holdouts))):
            folder = root / split / identity / video / "combined"
            folder.mkdir(parents=True, exist_ok=True)
            for number in numbers:
                Image.fromarray(frames[number]).save(folder / f"{number:05d}_rgb.png")
    return root


# ----------------------------------------------------------------------- layouts


def test_voxceleb_style_tree(tmp_path):
    clip = real_file("liveportrait_d18.mp4")
    link(clip, tmp_path / "id00012" / "abcDEF_123" / "00001.mp4")
    link(clip, tmp_path / "id00012" / "abcDEF_123" / "00002.mp4")
    link(clip, tmp_path / "id00012" / "zzz" / "00001.mp4")
    link(clip, tmp_path / "id00007" / "video" / "00003.mp4")
    clips, problems = discover_clips(tmp_path)
    assert problems == []
    assert keys(clips) == [
        ("id00007", "video_00003"),
        ("id00012", "abcDEF_123_00001"),
        ("id00012", "abcDEF_123_00002"),
        ("id00012", "zzz_00001"),
    ]
    first = clips[1]
    assert first.kind == "video" and first.frame_roles is None
    assert first.source == "id00012/abcDEF_123/00001.mp4"
    assert first.paths == [(tmp_path / "id00012" / "abcDEF_123" / "00001.mp4").absolute()]
    assert first.paths[0].is_file()
    assert first.key == "id00012/abcDEF_123_00001"


def test_flat_two_level_and_deep_trees(tmp_path):
    clip = real_file("liveportrait_d19.mp4")
    link(clip, tmp_path / "talk.MP4")  # extensions are matched case-insensitively
    link(clip, tmp_path / "alice" / "interview.mov")
    link(clip, tmp_path / "a" / "b" / "c" / "d.mkv")
    (tmp_path / "alice" / "notes.txt").write_text("ignored silently")
    (tmp_path / "alice" / "clip.srt").write_text("ignored silently")
    (tmp_path / ".cache").mkdir()
    link(clip, tmp_path / ".cache" / "hidden.mp4")  # hidden folders are skipped
    clips, problems = discover_clips(tmp_path)
    assert problems == []
    assert keys(clips) == [("a", "b_c_d"), ("alice", "interview"), ("talk", "talk")]
    assert [clip.source for clip in clips] == ["a/b/c/d.mkv", "alice/interview.mov", "talk.MP4"]


def test_identity_from_parent_and_stem(tmp_path):
    clip = real_file("liveportrait_d18.mp4")
    link(clip, tmp_path / "id1" / "vid" / "take1.mp4")
    link(clip, tmp_path / "solo.mp4")
    by_parent, _ = discover_clips(tmp_path, identity_from="parent")
    assert keys(by_parent) == [(tmp_path.name, "solo"), ("vid", "take1")]
    by_stem, _ = discover_clips(tmp_path, identity_from="stem")
    assert keys(by_stem) == [("solo", "solo"), ("take1", "take1")]
    with pytest.raises(ValueError, match="identity_from"):
        discover_clips(tmp_path, identity_from="grandparent")
    with pytest.raises(ValueError, match="layout"):
        discover_clips(tmp_path, layout="voxceleb")


def test_image_sequence_folders(tmp_path):
    frames = real_frames(3, size=24)
    sequence = tmp_path / "bob" / "seq1"
    sequence.mkdir(parents=True)
    for number, rgb in zip((10, 2, 1), frames):
        Image.fromarray(rgb).save(sequence / f"frame{number}.png")
    # Images next to a video are not a sequence (e.g. thumbnails): reported, not a clip.
    mixed = tmp_path / "carol"
    link(real_file("liveportrait_d18.mp4"), mixed / "talk.mp4")
    link(real_file("sadtalker_happy.png"), mixed / "thumb.png")
    clips, problems = discover_clips(tmp_path)
    assert keys(clips) == [("bob", "seq1"), ("carol", "talk")]
    images = clips[0]
    assert images.kind == "images" and images.source == "bob/seq1"
    assert [path.name for path in images.paths] == ["frame1.png", "frame2.png", "frame10.png"]
    assert len(problems) == 1
    assert problems[0]["path"] == str(mixed.absolute())
    assert "image files ignored" in problems[0]["reason"]


def test_root_folder_of_images_is_one_clip(tmp_path):
    root = tmp_path / "portraits"
    link(real_file("sadtalker_happy.png"), root / "p2.png")
    link(real_file("sadtalker_sad.png"), root / "p1.png")
    clips, problems = discover_clips(root)
    assert problems == []
    assert keys(clips) == [("portraits", "portraits")]
    assert [path.name for path in clips[0].paths] == ["p1.png", "p2.png"]
    assert clips[0].source == "."


def test_single_video_and_single_image(tmp_path):
    video = link(real_file("liveportrait_d12.mp4"), tmp_path / "speaker 1.mp4")
    clips, problems = discover_clips(video)
    assert problems == []
    assert keys(clips) == [("speaker_1", "speaker_1")]
    assert clips[0].kind == "video" and clips[0].paths == [video.absolute()]
    assert clips[0].source == "speaker 1.mp4"

    photo = link(real_file("liveportrait_s12.jpg"), tmp_path / "people" / "einstein.jpg")
    clips, _ = discover_clips(photo, identity_from="parent")
    assert keys(clips) == [("people", "einstein")]
    assert clips[0].kind == "images" and len(clips[0].paths) == 1

    notes = tmp_path / "readme.txt"
    notes.write_text("hello")
    with pytest.raises(ValueError, match="not a video or image"):
        discover_clips(notes)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_clips(tmp_path / "nowhere")


def test_problems_for_unreadable_folders_and_broken_links(tmp_path, monkeypatch):
    link(real_file("liveportrait_d18.mp4"), tmp_path / "ok" / "a.mp4")
    locked = tmp_path / "locked"
    link(real_file("liveportrait_d18.mp4"), locked / "b.mp4")
    (tmp_path / "ok" / "gone.mp4").symlink_to(tmp_path / "does-not-exist.mp4")

    # Root can read any folder, so simulate the permission error at the OS call.
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == locked.absolute():
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(sources.os, "scandir", scandir)
    clips, problems = discover_clips(tmp_path)
    assert keys(clips) == [("ok", "a")]
    reasons = {Path(problem["path"]).name: problem["reason"] for problem in problems}
    assert set(reasons) == {"locked", "gone.mp4"}
    assert "unreadable directory" in reasons["locked"]
    assert "broken symbolic link" in reasons["gone.mp4"]


def test_symlinked_folder_loop_is_searched_once(tmp_path):
    link(real_file("liveportrait_d18.mp4"), tmp_path / "p" / "x.mp4")
    (tmp_path / "p" / "again").symlink_to(tmp_path / "p", target_is_directory=True)
    clips, problems = discover_clips(tmp_path)
    assert keys(clips) == [("p", "x")]
    assert len(problems) == 1 and "already searched" in problems[0]["reason"]


def test_duplicate_ids_get_deterministic_suffixes(tmp_path):
    clip = real_file("liveportrait_d18.mp4")
    # "a b" and "a_b" sanitise to the same id; "a_b-2" already exists and is kept as is.
    for name in ("a b.mp4", "a_b.mp4", "a?b.mov", "a_b-2.mp4"):
        link(clip, tmp_path / "p" / name)
    first, _ = discover_clips(tmp_path)
    again, _ = discover_clips(tmp_path)
    assert keys(first) == keys(again)
    ids = {clip.source: clip.clip_id for clip in first}
    # Ties are broken by source path: "p/a b.mp4" < "p/a?b.mov" < "p/a_b.mp4".
    assert ids == {"p/a b.mp4": "a_b", "p/a?b.mov": "a_b-3", "p/a_b.mp4": "a_b-4",
                   "p/a_b-2.mp4": "a_b-2"}
    assert len({clip.key for clip in first}) == 4
    assert keys(first) == sorted(keys(first))


def test_sanitize_id():
    assert sanitize_id("id00012") == "id00012"
    assert sanitize_id("Zoë Saldaña") == "Zoe_Saldana"
    assert sanitize_id("../../etc/passwd") == "_.._etc_passwd"
    assert sanitize_id(".hidden") == "hidden"
    assert sanitize_id("..") == "_"
    assert sanitize_id("a/b\\c:d") == "a_b_c_d"
    assert sanitize_id("keep-these_chars.1") == "keep-these_chars.1"
    assert sanitize_id("李小龙") == "_"
    long_a, long_b = sanitize_id("x" * 300 + "a"), sanitize_id("x" * 300 + "b")
    assert len(long_a) == sources.MAX_ID_LENGTH and long_a != long_b
    for text in ("../x", "a b", ".", "李", "x" * 300):
        safe = sanitize_id(text)
        assert "/" not in safe and not safe.startswith(".") and safe


# -------------------------------------------------------------------- fsth-eval


def test_fsth_eval_layout(tmp_path):
    root = build_fsth_eval(tmp_path / "eval", {
        ("id10001", "vidA"): (2, 3),
        ("id10001", "vidB"): (1, 2),
        ("id10002", "vidC"): (4, 1),
    })
    (root / "train" / "id10001" / "vidA" / "combined" / "notes.txt").write_text("ignored")
    clips, problems = discover_clips(root, layout="fsth-eval")
    assert problems == []
    assert keys(clips) == [("id10001", "vidA"), ("id10001", "vidB"), ("id10002", "vidC")]
    vid_a = clips[0]
    assert vid_a.kind == "images" and vid_a.source == "id10001/vidA"
    assert [path.parts[-5] for path in vid_a.paths] == ["train"] * 2 + ["test"] * 3
    assert [path.name for path in vid_a.paths] == [f"{n:05d}_rgb.png" for n in range(5)]
    assert vid_a.frame_roles == ["input", "input", "holdout", "holdout", "holdout"]
    assert clips[2].frame_roles == ["input"] * 4 + ["holdout"]


def test_fsth_eval_incomplete_video_is_reported(tmp_path):
    root = build_fsth_eval(tmp_path / "eval", {("id1", "v1"): (1, 1), ("id1", "v2"): (1, 1)})
    for path in (root / "test" / "id1" / "v2" / "combined").iterdir():
        path.unlink()
    (root / "test" / "id1" / "v2" / "combined").rmdir()
    clips, problems = discover_clips(root, layout="fsth-eval")
    assert keys(clips) == [("id1", "v1")]
    assert len(problems) == 1 and "no test frames" in problems[0]["reason"]


def test_fsth_eval_wrong_root_raises(tmp_path):
    link(real_file("liveportrait_d18.mp4"), tmp_path / "plain" / "a.mp4")
    with pytest.raises(ValueError, match="fsth-eval layout") as caught:
        discover_clips(tmp_path / "plain", layout="fsth-eval")
    assert str(tmp_path / "plain") in str(caught.value)
    assert "train" in str(caught.value) and "combined" in str(caught.value)


def test_fsth_eval_root_searched_as_auto_is_flagged(tmp_path):
    root = build_fsth_eval(tmp_path / "eval", {("id1", "v1"): (1, 1)})
    clips, problems = discover_clips(root)
    assert len(clips) == 2  # the train and test folders, as plain image sequences
    assert any("layout='fsth-eval'" in problem["reason"] for problem in problems)


# --------------------------------------------------------------------- sharding


def make_clips(count: int) -> list[ClipSource]:
    return [
        ClipSource(identity=f"id{k % 7:03d}", clip_id=f"clip{k:04d}", kind="video",
                   paths=[Path(f"/data/{k}.mp4")], source=f"{k}.mp4")
        for k in range(count)
    ]


@pytest.mark.parametrize("num_shards", [1, 3, 8])
def test_shards_partition_the_clips(num_shards):
    clips = make_clips(200)
    shards = [shard_clips(clips, index, num_shards) for index in range(num_shards)]
    seen = [clip.key for shard in shards for clip in shard]
    assert sorted(seen) == sorted(clip.key for clip in clips)  # union is all, no overlap
    assert len(seen) == len(set(seen))
    assert [[c.key for c in s] for s in shards] == [
        [c.key for c in shard_clips(make_clips(200), index, num_shards)]
        for index in range(num_shards)
    ]
    if num_shards > 1:
        assert all(shards), "200 clips should reach every shard"
        # Order within a shard follows the input order.
        for shard in shards:
            positions = [clips.index(clip) for clip in shard]
            assert positions == sorted(positions)


def test_shard_assignment_is_pinned():
    """A clip must stay in its shard across machines, processes and Python versions
    (``hash()`` is salted per process; SHA-1 is not), so the values are written down."""
    names = ["id00012/abc_00001", "id00012/abc_00002", "id10001/vidA", "a/b", "x/y"]
    assert [sources.shard_of(name, 4) for name in names] == [0, 1, 1, 3, 2]
    assert [sources.shard_of(name, 7) for name in names] == [5, 2, 5, 0, 0]
    with pytest.raises(ValueError, match="invalid shard"):
        shard_clips(make_clips(3), 2, 2)
    with pytest.raises(ValueError, match="invalid shard"):
        shard_clips(make_clips(3), 0, 0)


def test_parse_shard():
    assert parse_shard("0/4") == (0, 4)
    assert parse_shard(" 3 / 4 ") == (3, 4)
    assert parse_shard("0/1") == (0, 1)
    for bad in ("4/4", "1/0", "-1/4", "a/b", "2", "1/2/3", ""):
        with pytest.raises(ValueError, match="invalid shard"):
            parse_shard(bad)
