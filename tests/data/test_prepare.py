"""Dataset preparation on real videos: output, crops, segmentation, bad input, resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkinghead.cli import main
from talkinghead.data import dataset_format as fmt
from talkinghead.data.dataset_format import PreparedDataset
from talkinghead.data.landmarks.ibug68 import interocular_distance
from talkinghead.data.prepare import PrepareError, RunOptions, prepare_dataset
from talkinghead.data.segmentation_classes import CLASS_INDEX

from real_inputs import REAL_VIDEOS, REPO, copy_tree, tiny_config


def _tree_digest(root: Path) -> dict[str, bytes]:
    """Every file under the dataset's clips/ folder with its bytes (landmarks as arrays)."""
    out = {}
    for path in sorted((root / fmt.CLIPS_DIR).rglob("*")):
        if path.is_file():
            rel = str(path.relative_to(root))
            if path.suffix == ".npz":
                with np.load(path) as data:
                    out[rel] = b"".join(data[k].tobytes() for k in sorted(data.files))
            else:
                out[rel] = path.read_bytes()
    return out


def test_prepared_dataset_layout_and_contents(prepared_dataset):
    dataset = PreparedDataset(prepared_dataset)
    assert len(dataset.records) == len(REAL_VIDEOS)
    assert dataset.info["segmentation"]["source"] == "landmarks"
    assert dataset.classes[CLASS_INDEX["u_lip"]] == "u_lip"
    assert dataset.info["landmarks"] == {"backend": "mediapipe", "num_dense": 478, "layout68": "ibug"}
    for record in dataset.records:
        clip = dataset.clip(record)
        assert clip.num_frames == record.num_frames == 4
        assert clip.landmarks68.shape == (4, 68, 2)
        assert clip.dense_landmarks.shape == (4, 478, 3)
        assert np.all(clip.confidence > 0.5)
        assert clip.frame(0).shape == (64, 64, 3)
        assert clip.segmentation(3).shape == (64, 64)
        meta = clip.meta
        assert meta["fps"] > 0 and len(meta["timestamps"]) == 4
        assert meta["timestamps"] == sorted(meta["timestamps"])
        assert meta["source"].endswith(".mp4")
        # frames sampled across the whole clip, not just its start
        assert meta["timestamps"][-1] - meta["timestamps"][0] > 3.0


def test_landmarks_lie_on_the_face(prepared_dataset):
    dataset = PreparedDataset(prepared_dataset)
    for record in dataset.records:
        clip = dataset.clip(record)
        pts = clip.landmarks68
        # the head crop centres the face: landmarks inside the crop and a plausible face size
        assert pts.min() >= 0 and pts.max() <= 64
        iod = interocular_distance(pts)
        assert np.all((iod > 64 * 0.12) & (iod < 64 * 0.5))
        # 68-point map consistent with the dense mesh: each eye's points inside that eye's
        # region of the mesh (bounding box of the mesh's eye-contour vertices, with a margin)
        dense = clip.dense_landmarks[..., :2]
        for ibug, mesh in ((slice(36, 42), [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173]),
                           (slice(42, 48), [263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398])):
            region = dense[:, mesh]
            lo, hi = region.min(axis=1) - 1.0, region.max(axis=1) + 1.0
            eye = pts[:, ibug]
            assert np.all((eye >= lo[:, None]) & (eye <= hi[:, None]))


def test_crop_box_is_one_stable_box_per_clip(prepared_dataset):
    dataset = PreparedDataset(prepared_dataset)
    for record in dataset.records:
        meta = dataset.clip(record).meta
        x0, y0, x1, y1 = meta["crop_box"]
        assert abs((x1 - x0) - (y1 - y0)) < 1e-3
        # the box holds every frame's landmarks, mapped back to the source
        pts = dataset.clip(record).landmarks68 / 64 * (x1 - x0) + np.array([x0, y0])
        assert pts[..., 0].min() >= x0 and pts[..., 0].max() <= x1
        assert pts[..., 1].min() >= y0 and pts[..., 1].max() <= y1


def test_segmentation_classes_where_expected(prepared_dataset):
    dataset = PreparedDataset(prepared_dataset)
    lips = {CLASS_INDEX["u_lip"], CLASS_INDEX["l_lip"], CLASS_INDEX["mouth"]}
    for record in dataset.records:
        clip = dataset.clip(record)
        for i in range(clip.num_frames):
            labels = clip.segmentation(i)
            mouth = clip.landmarks68[i, 48:60]
            hits = [labels[int(round(y)), int(round(x))] for x, y in mouth if 0 <= x < 63.5 and 0 <= y < 63.5]
            # outer-lip landmarks sit on the lip boundary: most of them on a lip/mouth class
            assert np.mean([h in lips for h in hits]) >= 0.5
            nose_tip = clip.landmarks68[i, 30]
            cy, cx = int(nose_tip[1]), int(nose_tip[0])
            assert labels[cy, cx] in (CLASS_INDEX["nose"], CLASS_INDEX["skin"])
            assert (labels == CLASS_INDEX["skin"]).sum() > 64 * 64 * 0.05
            corner = labels[0, 0], labels[0, 63]
            assert CLASS_INDEX["skin"] not in corner


def test_bad_inputs_are_recorded_and_the_batch_goes_on(bad_inputs, tmp_path):
    out = tmp_path / "ds"
    summary = prepare_dataset(bad_inputs, out, tiny_config(min_frames=2), RunOptions(progress=False))
    report = json.loads((out / fmt.REPORT_FILE).read_text())
    clips = report["clips"]

    def reasons(name):
        return [p["reason"] for p in clips[f"{name}/{name}"]["problems"]]

    assert clips["good/good"]["status"] == "ok"
    assert clips["not_a_video/not_a_video"]["status"] == "failed"
    assert "unreadable" in reasons("not_a_video")
    assert "truncated" in reasons("truncated")
    assert clips["truncated/truncated"]["status"] == "ok"  # frames before the cut are kept
    assert clips["no_face/no_face"]["status"] == "failed" and reasons("no_face")[-1] == "no_face"
    assert clips["tiny_face/tiny_face"]["status"] == "failed" and reasons("tiny_face")[-1] == "tiny_face"
    assert clips["grayscale/grayscale"]["status"] == "ok" and "grayscale" in reasons("grayscale")
    assert clips["two_faces/two_faces"]["status"] == "ok" and "multiple_faces" in reasons("two_faces")
    assert summary.clips_failed == 3 and summary.exit_code(strict=False) == 0
    assert summary.exit_code(strict=True) == 1
    gray = PreparedDataset(out).clip(next(r for r in PreparedDataset(out).records if r.identity == "grayscale"))
    assert gray.frame(0).shape == (64, 64, 3)
    # failed clips left nothing behind in the dataset
    assert not (out / fmt.clip_relpath("no_face", "no_face")).exists()
    assert not list((out / fmt.CLIPS_DIR).glob(f"*/{fmt.TMP_PREFIX}*"))
    # a rerun skips both the finished and the failed clips
    again = prepare_dataset(bad_inputs, out, tiny_config(min_frames=2), RunOptions(progress=False))
    assert again.clips_done == 0 and again.clips_skipped == summary.clips_total


def test_face_index_chooses_the_other_face(bad_inputs, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "two_faces").symlink_to(bad_inputs / "two_faces")
    largest = prepare_dataset(inputs, tmp_path / "a", tiny_config(), RunOptions(progress=False))
    second = prepare_dataset(inputs, tmp_path / "b", tiny_config(face_index=1), RunOptions(progress=False))
    assert largest.clips_done == second.clips_done == 1
    box_a = json.loads(next((tmp_path / "a").rglob("meta.json")).read_text())["crop_box"]
    box_b = json.loads(next((tmp_path / "b").rglob("meta.json")).read_text())["crop_box"]
    assert (box_a[0] + box_a[2]) / 2 < 320 < (box_b[0] + box_b[2]) / 2  # left face, then right face
    assert box_b[2] - box_b[0] < box_a[2] - box_a[0]


def test_nothing_usable_exits_non_zero(bad_inputs, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "not_a_video.mp4").symlink_to(bad_inputs / "not_a_video.mp4")
    code = main(["prepare", str(inputs), str(tmp_path / "ds"), "--no-progress", "--size", "64"])
    assert code == 1
    captured = capsys.readouterr()
    assert "not_a_video.mp4" in captured.out + captured.err


def test_mismatched_settings_are_refused(prepared_dataset, real_videos, tmp_path):
    out = copy_tree(prepared_dataset, tmp_path / "ds")
    with pytest.raises(PrepareError, match=r"size: 64 -> 128"):
        prepare_dataset(real_videos, out, tiny_config(size=128), RunOptions(progress=False))


def test_identity_split_is_disjoint_and_sharding_adds_up(real_videos, tmp_path):
    config = tiny_config(split_by="identity", test_fraction=0.34, frames_per_clip=2)
    for shard in range(2):
        prepare_dataset(real_videos, tmp_path / "sharded", config, RunOptions(progress=False, shard=(shard, 2)))
    dataset = PreparedDataset(tmp_path / "sharded")
    assert len(dataset.records) == len(REAL_VIDEOS)
    train, test = set(dataset.identities("train")), set(dataset.identities("test"))
    assert train and test and not train & test


def test_parallel_workers_match_serial(prepared_dataset, real_videos, tmp_path):
    summary = prepare_dataset(real_videos, tmp_path / "par", tiny_config(), RunOptions(progress=False, workers=2))
    assert summary.clips_done == len(REAL_VIDEOS)
    assert _tree_digest(tmp_path / "par") == _tree_digest(prepared_dataset)


def test_killed_run_resumes_to_identical_output(prepared_dataset, real_videos, tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "talkinghead", "prepare", str(real_videos), str(out),
           "--config", str(REPO / "configs" / "prepare" / "tiny.yaml"), "--frames-per-clip", "4",
           "--size", "64", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120

    def finished_clips() -> list[Path]:
        # a clip is finished once its folder has its real name (meta.json is written inside the
        # temporary folder first, so seeing meta.json alone is not enough)
        return [p.parent for p in (out / fmt.CLIPS_DIR).glob(f"*/*/{fmt.META_FILE}") if fmt.TMP_PREFIX not in str(p)]

    # kill -9 as soon as the first clip is complete, while the next one is being written
    while time.time() < deadline and proc.poll() is None:
        if finished_clips():
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = finished_clips()
    assert 1 <= len(finished) <= len(REAL_VIDEOS)
    for folder in (out / fmt.CLIPS_DIR).glob("*/*"):
        # every clip folder under its real name is complete
        assert folder.name.startswith(fmt.TMP_PREFIX) or fmt.is_finished_clip(folder)
    summary = prepare_dataset(real_videos, out, tiny_config(), RunOptions(progress=False))
    assert summary.clips_skipped == len(finished)
    assert summary.clips_done + summary.clips_skipped == len(REAL_VIDEOS)
    assert _tree_digest(out) == _tree_digest(prepared_dataset)
    assert len(PreparedDataset(out).records) == len(REAL_VIDEOS)
    assert not list((out / fmt.CLIPS_DIR).glob(f"*/{fmt.TMP_PREFIX}*"))


def test_cli_prepare_and_inspect(real_videos, tmp_path, capsys):
    single = real_videos / "liveportrait_d18.mp4"
    out = tmp_path / "ds"
    assert main(["prepare", str(single), str(out), "--frames-per-clip", "3", "--size", "64",
                 "--segmentation", "landmarks", "--image-format", "png", "--no-progress"]) == 0
    assert "1 written" in capsys.readouterr().out
    assert len(list((out / fmt.CLIPS_DIR).rglob("*.png"))) == 6  # 3 frames + 3 maps
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "contact sheet" in text
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 64
