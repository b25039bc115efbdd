"""The command line prints user errors as one line and lets bugs raise with their traceback."""

from __future__ import annotations

import pytest

from talkinghead import cli
from talkinghead.cli import data as cli_data
from talkinghead.errors import TalkingHeadError


def test_a_user_error_is_one_line_with_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert cli.main(["train", str(missing), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(missing) in err[0]


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        return {}["image"]  # a programming error, not the user's

    monkeypatch.setattr(cli_data, "cmd_inspect", broken)
    with pytest.raises(KeyError, match="image"):
        cli.main(["inspect", "anything"])


def test_every_user_facing_error_derives_from_the_base():
    from talkinghead.config import ConfigError
    from talkinghead.data.dataset_format import DatasetError
    from talkinghead.data.media_info import VideoReadError
    from talkinghead.inference.driving import DrivingError
    from talkinghead.inference.source import SourceError
    from talkinghead.inference.writers import OutputExistsError
    from talkinghead.models.registry import UnknownMethodError
    from talkinghead.training.recipe import TrainingSetupError
    from talkinghead.weights import WeightsError
    from talkinghead.weights.checkpoint import CheckpointError
    from talkinghead.weights.release import ReleaseError
    from talkinghead.weights.trained import PretrainedError

    for error in (ConfigError, DatasetError, VideoReadError, DrivingError, SourceError, OutputExistsError,
                  UnknownMethodError, TrainingSetupError, WeightsError, CheckpointError, ReleaseError,
                  PretrainedError):
        assert issubclass(error, TalkingHeadError), error
