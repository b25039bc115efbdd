"""`talkinghead inspect`: dataset summary and contact sheet on a small dataset of real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fake_dataset import build_fake_dataset

from talkinghead.data.dataset_format import PreparedDataset
from talkinghead.data.inspect import (
    GAP,
    LABEL_HEIGHT,
    contact_sheet,
    contact_sheet_size,
    format_summary,
    summarize,
)
from talkinghead.data.segmentation_classes import CELEBAMASK_CLASSES


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_fake_dataset(tmp_path_factory.mktemp("inspect") / "dataset")


def test_summary_counts(root):
    summary = summarize(PreparedDataset(root))
    assert summary["num_clips"] == 4 and summary["num_frames"] == 32 and summary["num_identities"] == 3
    assert summary["splits"] == {
        "test": {"clips": 1, "frames": 8, "identities": 1},
        "train": {"clips": 3, "frames": 24, "identities": 2},
    }
    assert summary["frames_per_clip"] == {"min": 8, "mean": 8.0, "max": 8}
    assert summary["size"] == 64 and summary["format_version"] == 1
    assert summary["landmarks"] == {"backend": "mediapipe", "num_dense": 478}
    assert summary["segmentation"] == {"source": "landmarks", "classes": list(CELEBAMASK_CLASSES)}
    assert summary["problems"] == {
        "clips_ok": 4,
        "clips_failed": 3,
        "failures_by_reason": {"no_face": 2, "too_few_frames": 1},
        "frames_dropped": 2,
        "dropped_by_reason": {"low_confidence": 1, "no_face": 1},
    }
    assert summarize(root) == summary  # a folder works as well


def test_format_summary(root):
    text = format_summary(summarize(root))
    assert "4 clips, 32 frames, 3 identities" in text
    assert "train" in text and "test" in text
    assert "mediapipe (478 dense points)" in text
    assert "segmentation: landmarks, 19 classes" in text
    assert "failed clips: 3 (no_face: 2, too_few_frames: 1)" in text
    assert "dropped frames: 2 (low_confidence: 1, no_face: 1)" in text


def test_summary_without_report_or_segmentation(tmp_path):
    root = build_fake_dataset(tmp_path / "plain", segmentation=False, report=False)
    summary = summarize(root)
    assert summary["problems"] is None
    assert summary["segmentation"]["source"] == "none"
    text = format_summary(summary)
    assert "no report.json" in text and "segmentation: none" in text
    # Without segmentation the sheet shows the dense mesh beside the landmarks.
    sheet = contact_sheet(root, tmp_path / "sheet.png", num_clips=1, frames_per_clip=2)
    assert sheet.is_file()


def test_contact_sheet_grid(root, tmp_path):
    out = tmp_path / "sheets" / "sheet.png"
    path = contact_sheet(root, out, num_clips=8, frames_per_clip=4, seed=0)
    assert path == out and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["sheet.png"]  # no temporary file left
    image = cv2.imread(str(out), cv2.IMREAD_COLOR)
    cell = 128  # 64 px frames are shown at the 128 px minimum
    assert (image.shape[1], image.shape[0]) == contact_sheet_size(4, 4, cell)  # all 4 clips
    assert contact_sheet_size(4, 4, cell) == (GAP + 4 * (2 * cell + GAP), GAP + 4 * (LABEL_HEIGHT + cell + GAP))
    # Every cell holds a picture, not the sheet background.
    for row in range(4):
        top = GAP + row * (LABEL_HEIGHT + cell + GAP) + LABEL_HEIGHT
        for column in range(8):
            left = GAP + (column // 2) * (2 * cell + GAP) + (column % 2) * cell
            picture = image[top + 20 : top + cell, left : left + cell].astype(np.int32)
            assert picture.std() > 10, (row, column)


def test_contact_sheet_picks_clips_by_seed(root, tmp_path):
    first = contact_sheet(root, tmp_path / "a.png", num_clips=2, frames_per_clip=3, seed=1, cell_size=64)
    again = contact_sheet(root, tmp_path / "b.png", num_clips=2, frames_per_clip=3, seed=1, cell_size=64)
    image = cv2.imread(str(first))
    assert (image.shape[1], image.shape[0]) == contact_sheet_size(2, 3, 64)
    assert np.array_equal(image, cv2.imread(str(again)))
    train_only = contact_sheet(root, tmp_path / "c.png", num_clips=8, frames_per_clip=1, split="train", cell_size=64)
    assert cv2.imread(str(train_only)).shape[0] == contact_sheet_size(3, 1, 64)[1]
    with pytest.raises(ValueError, match="no clips in split 'validation'"):
        contact_sheet(root, tmp_path / "d.png", split="validation")
