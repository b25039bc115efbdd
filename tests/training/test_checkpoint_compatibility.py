"""Resuming checks a checkpoint's architecture; options added after it was written take their defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from talkinghead.config import load_config, to_dict
from talkinghead.training.recipe import TrainingSetupError
from talkinghead.training.run import check_checkpoint_matches

REPO = Path(__file__).resolve().parents[2]



def tiny_config():
    return load_config(REPO / "configs" / "metaportrait" / "tiny.yaml")


def test_an_option_the_checkpoint_predates_counts_as_its_default():
    config = tiny_config()
    saved = to_dict(config)
    del saved["model"]["source_slots"]  # written before the option existed
    check_checkpoint_matches({"method": config.method, "config": saved, "stage_index": 0}, config, "old.pt")


def test_a_different_value_is_still_refused():
    config = tiny_config()
    saved = to_dict(config)
    saved["model"]["source_slots"] = 2
    with pytest.raises(TrainingSetupError, match="model.source_slots: checkpoint 2, config 4"):
        check_checkpoint_matches({"method": config.method, "config": saved, "stage_index": 0}, config, "old.pt")
