"""Issue 10, words that mislead: checkpoint problems are named as what they are, said once, and short."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from talkinghead.cli import main
from talkinghead.weights.checkpoint import CheckpointManager

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "lsr_demo"


def corrupt_run(folder: Path) -> Path:
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir(parents=True)
    # Real bytes, cut short: what an interrupted copy leaves.
    data = (DEMO / "layout_encoder.safetensors").read_bytes()
    (checkpoints / "step_00000010.pt").write_bytes(data[:4000])
    (checkpoints / "step_00000020.pt").write_bytes(data[:3000])
    (checkpoints / "latest").write_text("step_00000020.pt\n")
    return folder


def test_run_with_only_corrupt_checkpoints_is_not_called_empty(tmp_path, capsys):
    run = corrupt_run(tmp_path / "run")
    with pytest.warns(UserWarning):
        code = main(["export", "release", "--checkpoint", str(run), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "none of its 2 checkpoint file(s)" in err and "nor a run folder with checkpoints" not in err


def test_corrupt_checkpoint_warning_is_given_once(tmp_path):
    manager = CheckpointManager(corrupt_run(tmp_path / "run"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert manager.load_latest() is None and manager.latest_path() is None
    assert len([w for w in caught if "no loadable checkpoint" in str(w.message)]) == 1


def test_single_network_file_points_to_the_release_folder(tmp_path, capsys):
    single = shutil.copy(DEMO / "layout_encoder.safetensors", tmp_path / "layout_encoder.safetensors")
    assert main(["export", "release", "--checkpoint", str(single), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "release folder" in err and "CheckpointManager" not in err


def test_state_dict_mismatch_is_summarised(tmp_path, capsys):
    model = shutil.copytree(DEMO, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config["model"]["encoder"]["base_channels"] = 8  # the stored weights no longer fit
    (model / "config.json").write_text(json.dumps(config))
    from talkinghead.models.pretrained import PretrainedError, load_pretrained

    with pytest.raises(PretrainedError) as mismatch:
        load_pretrained(model).build(["layout_encoder"])
    message = str(mismatch.value)
    assert len(message.splitlines()) == 1 and len(message) < 800
    assert "wrong shape keys" in message and "more" in message
