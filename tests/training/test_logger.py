"""Training logger, sample grids and layout pictures."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from talkinghead.data.segmentation_classes import PALETTE
from talkinghead.training.image_grid import colorize_layout, make_grid
from talkinghead.training.logger import TrainingLogger


def test_logger_writes_metrics_samples_and_events(tmp_path, capsys):
    with TrainingLogger(tmp_path, enabled=True, total_steps=10) as logger:
        logger.info("starting stage full")
        for step in (1, 2):
            logger.scalars({"loss/g": torch.tensor(0.5 * step), "lr": 1e-3}, step)
            logger.progress(step, {"loss": 0.5 * step, "stage": "full"})
        logger.start_progress(20, initial=5, description="full")
        logger.progress(6)
        logger.end_progress()
        rows = [torch.zeros(2, 3, 8, 8), torch.ones(2, 1, 8, 8)]
        grid = make_grid(rows)
        png = logger.images("train/samples", grid, step=2)
        logger.images("raw", torch.rand(3, 5, 6) * 2 - 1, step=3)
        assert logger.image_rows("rows", rows, step=4).is_file()

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [1, 2]
    assert records[1]["loss/g"] == 1.0 and records[0]["lr"] == 1e-3 and "time" in records[0]
    assert png == tmp_path / "samples" / "train_samples-00000002.png"
    assert np.array_equal(np.asarray(Image.open(png)), grid.permute(1, 2, 0).numpy())
    assert Image.open(tmp_path / "samples" / "raw-00000003.png").size == (6, 5)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert "starting stage full" in (tmp_path / "train.log").read_text()
    assert "starting stage full" in capsys.readouterr().err
    assert not list((tmp_path / "samples").glob(".*"))  # no temporary files left


def test_metrics_resume_after_a_torn_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "lo')
    with TrainingLogger(tmp_path, enabled=True, use_tensorboard=False) as logger:
        logger.scalars({"loss": 1.0}, 3)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 3


def test_disabled_logger_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    logger = TrainingLogger(run_dir, enabled=False, total_steps=10)
    logger.info("hidden")
    logger.scalars({"loss": 1.0}, 1)
    assert logger.images("x", torch.zeros(3, 4, 4, dtype=torch.uint8), 1) is None
    logger.progress(1, {"loss": 1.0})
    logger.start_progress(5, initial=1, description="x")
    assert logger.image_rows("x", [torch.zeros(1, 3, 2, 2)], 1) is None
    logger.end_progress()
    logger.close()
    assert not run_dir.exists()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_make_grid_layout_and_values():
    rows = [
        torch.full((2, 3, 4, 4), -1.0),  # black
        torch.ones(1, 1, 8, 8),  # white, one channel, larger: resized to 4x4
        torch.zeros(3, 3, 2, 2),  # grey, smaller, three columns
    ]
    grid = make_grid(rows, padding=1)
    assert grid.dtype == torch.uint8
    assert grid.shape == (3, 1 + 3 * (4 + 1), 1 + 3 * (4 + 1))
    assert torch.all(grid[:, 1:5, 1:5] == 0)
    assert torch.all(grid[:, 6:10, 1:5] == 255)
    assert torch.all(grid[:, 6:10, 11:15] == 0)  # the second row has one image only
    assert torch.all(grid[:, 11:15, 11:15] == 128)


def test_colorize_layout_uses_the_palette_and_cycles():
    num_classes = len(PALETTE) + 2
    labels = torch.tensor([[0, 1], [len(PALETTE), len(PALETTE) + 1]])  # (2, 2)
    layout = torch.nn.functional.one_hot(labels, num_classes).permute(2, 0, 1).float().unsqueeze(0)  # (1, C, 2, 2)
    picture = colorize_layout(torch.softmax(layout * 5, dim=1))
    assert picture.shape == (1, 3, 2, 2)
    assert picture.min() >= -1 and picture.max() <= 1
    as_uint8 = ((picture + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(as_uint8[0, 1], PALETTE[1])
    assert np.array_equal(as_uint8[1, 0], PALETTE[0])  # channel len(PALETTE) wraps to colour 0
    assert np.array_equal(as_uint8[1, 1], PALETTE[1])
    assert make_grid([picture]).shape == (3, 6, 6)
