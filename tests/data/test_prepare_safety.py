"""Issue 10, items 2 and 5 on real media: a dataset never feeds on itself, and a run that
produced nothing does not pin the folder to its settings; plus the dataset messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from real_inputs import make_video, real_file, tiny_config

from talkinghead.cli import main
from talkinghead.data.dataset_format import DatasetError, PreparedDataset
from talkinghead.data.prepare import PrepareError, RunOptions, prepare_dataset
from talkinghead.data.sources import discover_clips


def manifest_clips(dataset: Path) -> list[str]:
    return [line.split(",")[1] for line in (dataset / "manifest.csv").read_text().splitlines()[1:]]


@pytest.fixture()
def one_video(tmp_path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    make_video(real_file("liveportrait_d18.mp4"), folder / "d18.mp4", seconds=0.5)
    return folder


def test_output_inside_input_is_never_read_back(one_video):
    """Prepared frames and segmentation maps are images: they must not become new clips."""
    output = one_video / "prepared"
    config = tiny_config(size=128)  # faces in 128 px crops are big enough to be found again
    for _ in range(3):
        summary = prepare_dataset(one_video, output, config, RunOptions(progress=False))
        assert manifest_clips(output) == ["d18"], summary.format()
    # Any prepared dataset is skipped, not only this run's output.
    clips, problems = discover_clips(one_video)
    assert [c.source for c in clips] == ["d18.mp4"]
    assert any("prepared dataset" in p["reason"] for p in problems)


def test_output_that_is_or_holds_the_input_is_refused(one_video, tmp_path, capsys):
    assert main(["prepare", str(one_video), str(one_video), "--no-progress"]) == 2
    assert "is also the input" in capsys.readouterr().err
    assert main(["prepare", str(one_video), str(tmp_path), "--no-progress"]) == 2
    assert "holds the input" in capsys.readouterr().err
    assert not (one_video / "dataset.json").exists() and not (tmp_path / "dataset.json").exists()


def test_a_dataset_given_as_input_is_refused(one_video, tmp_path):
    dataset = tmp_path / "dataset"
    prepare_dataset(one_video, dataset, tiny_config(), RunOptions(progress=False))
    with pytest.raises(ValueError, match="dataset written by `talkinghead prepare`"):
        prepare_dataset(dataset, tmp_path / "again", tiny_config(), RunOptions(progress=False))


def test_run_without_any_clip_does_not_pin_the_settings(tmp_path):
    """All clips fail (no face): no dataset.json, and a later run with other settings works."""
    videos = tmp_path / "videos"
    videos.mkdir()
    good = real_file("liveportrait_d18.mp4")
    make_video(good, videos / "blurred.mp4", "-vf", "boxblur=40:5", seconds=0.4)
    output = tmp_path / "dataset"
    summary = prepare_dataset(videos, output, tiny_config(), RunOptions(progress=False))
    assert summary.dataset_clips == 0 and not (output / "dataset.json").exists()
    # Fixed input and other settings: accepted, and the earlier failure is retried.
    shutil.copy(good, videos / "blurred.mp4")
    summary = prepare_dataset(videos, output, tiny_config(size=96), RunOptions(progress=False))
    assert summary.dataset_clips == 1, summary.format()
    assert json.loads((output / "dataset.json").read_text())["config"]["size"] == 96


def test_wrong_face_parsing_file_fails_once_before_any_clip(one_video, tmp_path, isolated_home, capsys):
    """A structurally wrong file installed behind `weights add`'s back: one error, no dataset.json."""
    import torch

    from talkinghead.weights import asset_path

    target = asset_path("face_parsing")
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv.weight": torch.zeros(3, 3, 1, 1)}, target)
    output = tmp_path / "dataset"
    code = main(["prepare", str(one_video), str(output), "--config", str(Path(__file__).resolve().parents[2] /
                 "configs" / "prepare" / "tiny.yaml"), "--segmentation", "face-parsing", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "face_parsing" in err and "missing key" in err
    assert not (output / "dataset.json").exists()


def test_dataset_messages_point_the_right_way(one_video, tmp_path):
    with pytest.raises(DatasetError) as raw:
        PreparedDataset(one_video)
    message = str(raw.value)
    assert "raw videos" in message and f"prepare {one_video} {one_video} " not in message + " "
    assert f"{one_video}_prepared" in message
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / "dataset.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(DatasetError, match="interrupted"):
        PreparedDataset(interrupted)


def test_mismatched_settings_still_refused_when_clips_exist(one_video, tmp_path):
    output = tmp_path / "dataset"
    prepare_dataset(one_video, output, tiny_config(), RunOptions(progress=False))
    with pytest.raises(PrepareError, match="other settings"):
        prepare_dataset(one_video, output, tiny_config(size=96), RunOptions(progress=False))
