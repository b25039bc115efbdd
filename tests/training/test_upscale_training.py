"""Super-resolution data preparation from a real video, and the ``kind: upscale`` trainer (resume, CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from talkinghead.cli import main
from talkinghead.config import load_config
from talkinghead.data.sr_prepare import segment_starts
from talkinghead.data.sr_windows import SRWindowDataset, window_indices
from talkinghead.training.trainer import TrainingInterrupted
from talkinghead.training.upscale_trainer import train_upscale
from talkinghead.weights.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "upscale" / "tiny.yaml"


@pytest.fixture(scope="module")
def sr_data(tmp_path_factory, real_data) -> Path:
    """Consecutive 64 px crops (and 32 px inputs) of a real video, via a one-clip prepared dataset and `prepare-sr`."""
    root = tmp_path_factory.mktemp("sr")
    videos = root / "videos" / "person"
    videos.mkdir(parents=True)
    (videos / "d0.mp4").symlink_to(real_data / "liveportrait_d0.mp4")
    clip = root / "prepared" / "clips" / "person" / "d0"
    clip.mkdir(parents=True)
    meta = {"identity": "person", "clip_id": "d0", "split": "train", "source": "person/d0.mp4",
            "source_kind": "video", "crop_box": [64.0, 32.0, 448.0, 416.0], "fps": 25.0}
    (clip / "meta.json").write_text(json.dumps(meta))
    assert main(["prepare-sr", str(root / "prepared"), str(root / "videos"), str(root / "sr"), "--size", "64",
                 "--min-source-side", "300", "--train-segments", "2", "--train-length", "4"]) == 0
    return root / "sr"


def test_prepared_segments_are_consecutive_crops_and_their_degraded_halves(sr_data):
    index = json.loads((sr_data / "sr_dataset.json").read_text())
    assert [s["split"] for s in index["segments"]] == ["train", "train"]
    hr = np.load(sr_data / index["segments"][0]["path"] / "hr.npy")
    lr = np.load(sr_data / index["segments"][0]["path"] / "lr.npy")
    assert hr.shape == (4, 64, 64, 3) and lr.shape == (4, 32, 32, 3)
    # the input is the target at half size (up to JPEG): a box-filtered target is close to it
    box = hr.reshape(4, 32, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(box - lr).mean() < 8  # JPEG q90 with 4:2:0 chroma at 32 px: a few levels
    assert np.abs(box - lr).mean() < 0.5 * np.abs(box[:, ::-1] - lr).mean()
    assert not np.array_equal(hr[0], hr[1])  # consecutive frames of a talking video differ


def test_window_indices_replicate_the_edges():
    assert window_indices(0, 2, 5) == [0, 0, 0, 1, 2]
    assert window_indices(4, 2, 5) == [2, 3, 4, 4, 4]
    assert window_indices(0, 1, 1) == [0, 0, 0]
    assert segment_starts(12, 3, 4) == [0, 4, 8] and segment_starts(10, 3, 4) == [0, 6]  # never overlapping
    assert segment_starts(3, 2, 4) == []


def test_samples_are_adjacent_pairs_of_patches(sr_data):
    data = SRWindowDataset(sr_data)
    windows, targets = data.sample(torch.Generator().manual_seed(0), 3, 8, 1)
    assert windows.shape == (3, 2, 3, 3, 8, 8) and targets.shape == (3, 2, 3, 16, 16)
    # the centre of pair member 1 is the frame after member 0's: it is member 0's right neighbour
    assert torch.equal(windows[:, 0, 2], windows[:, 1, 1]) or torch.equal(windows[:, 0, 1], windows[:, 1, 1])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(sorted((run / "checkpoints").glob("*final.pt"))[0])
    return {**{f"net.{k}": v for k, v in state["networks"]["upscaler"].items()},
            **{f"ema.{k}": v for k, v in state["ema"]["upscaler"]["module"].items()},
            **{f"adam.{k}": v for k, v in state["optimizers"]["upscaler"]["state"][0].items()}}


def test_training_resumes_bit_identically(sr_data, tmp_path):
    config = load_config(TINY, [f"data_root={sr_data}"])
    train_upscale(config, tmp_path / "straight")
    with pytest.raises(TrainingInterrupted, match="--max-steps 3"):
        train_upscale(config, tmp_path / "stopped", max_steps=3)
    train_upscale(config, tmp_path / "stopped", resume=True)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "stopped")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "stopped" / "release" / "upscaler.safetensors").is_file()


def test_train_command_dispatches_on_the_config_kind(sr_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(TINY), f"data_root={sr_data}", "--run-dir", str(run), "--dry-run"]) == 0
    assert "1 training segments" not in capsys.readouterr().out  # two segments were prepared
    assert main(["train", str(TINY), f"data_root={sr_data}", "--run-dir", str(run)]) == 0
    assert (run / "release" / "config.json").is_file()
    from talkinghead.inference.upscale import StreamingUpscaler

    StreamingUpscaler.from_pretrained(run / "release", device="cpu")  # the release the trainer wrote loads
    assert main(["train", str(TINY), f"data_root={sr_data}", "--run-dir", str(run)]) == 2  # needs --resume
    assert "already holds checkpoints" in capsys.readouterr().err
    assert main(["train", str(TINY), f"data_root={tmp_path / 'nothing'}", "--run-dir", str(tmp_path / 'r2')]) == 2
    assert "sr_dataset.json: missing" in capsys.readouterr().err


def test_run_folder_is_opened_like_every_method_s(sr_data, tmp_path):
    """Through the shared run machinery: a method-like checkpoint, and the same refusals as `train`."""
    from talkinghead.training.recipe import TrainingSetupError
    from talkinghead.training.upscale_trainer import UpscaleSetupError

    config = load_config(TINY, [f"data_root={sr_data}"])
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train_upscale(config, run, max_steps=2)
    state = load_checkpoint(run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip())
    assert (state["method"], state["stage"], state["stage_step"]) == ("upscale", "upscale", 2)
    with pytest.raises(TrainingSetupError, match="already holds checkpoints; pass --resume"):
        train_upscale(config, run)
    wider = load_config(TINY, [f"data_root={sr_data}", "model.base_channels=8"])
    with pytest.raises(UpscaleSetupError, match="not a checkpoint of this super-resolution architecture"):
        train_upscale(wider, run, resume=True)
    with pytest.raises(TrainingSetupError):
        train_upscale(config, tmp_path / "empty", resume=True)
