"""The three methods' fine-tuning configs share one base (its fields, its check, their own defaults); one module check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from talkinghead.config import ConfigError, load_config, to_dict
from talkinghead.config.fsth import FSTHFinetuneConfig, FSTHStageConfig
from talkinghead.config.lsr import FinetuneConfig, StageConfig
from talkinghead.config.metaportrait import MetaPortraitFinetuneConfig, MetaPortraitStageConfig
from talkinghead.config.training import FinetuneConfigBase

REPO = Path(__file__).resolve().parents[2]
KINDS = {"lsr_finetune": FinetuneConfig, "fsth_finetune": FSTHFinetuneConfig,
         "metaportrait_finetune": MetaPortraitFinetuneConfig}
SHARED = [f.name for f in dataclasses.fields(FinetuneConfigBase)]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_fine_tuning_config_is_the_base_plus_its_own_fields(kind):
    config = load_config(None, kind=kind)
    assert type(config) is KINDS[kind] and isinstance(config, FinetuneConfigBase)
    assert list(to_dict(config))[1 : 1 + len(SHARED)] == SHARED  # after "kind", the shared options lead
    for key, value in (("steps", 0), ("batch_size", 0)):
        with pytest.raises(ConfigError, match="steps and batch_size must be >= 1"):
            load_config(None, [f"{key}={value}"], kind=kind)


def test_methods_keep_their_own_defaults():
    lsr, fsth, mp = FinetuneConfig(), FSTHFinetuneConfig(), MetaPortraitFinetuneConfig()
    assert (lsr.steps, lsr.batch_size, lsr.lr, lsr.betas, lsr.max_grad_norm, lsr.perceptual) == (
        100, 4, 1e-4, (0.0, 0.999), 10.0, "required")
    assert (fsth.steps, fsth.batch_size, fsth.lr, fsth.betas, fsth.max_grad_norm, fsth.perceptual) == (
        40, 8, 5e-5, (0.0, 0.9), 0.0, "auto")
    assert (mp.steps, mp.batch_size, mp.lr, mp.betas, mp.max_grad_norm, mp.perceptual) == (
        50, 4, 1e-4, (0.5, 0.999), 0.3, "auto")
    for config in (lsr, fsth, mp):
        assert (config.seed, config.device, config.precision, config.use_ema) == (0, "auto", "auto", True)
    with pytest.raises(ConfigError, match="d_steps must be >= 1"):
        load_config(None, ["d_steps=0"], kind="fsth_finetune")


def test_the_shipped_fine_tuning_file_loads():
    config = load_config(REPO / "configs/lsr/finetune.yaml", kind="lsr_finetune")
    assert (config.steps, config.perceptual) == (100, "auto")


@pytest.mark.parametrize("kind", ["lsr_finetune", "metaportrait_finetune"])
def test_unknown_modules_are_refused_with_the_known_ones(kind):
    with pytest.raises(ConfigError, match=r"modules: unknown module\(s\) \['nope'\]; known: \[.*'discriminator'\]"):
        load_config(None, ["modules=[discriminator, nope]"], kind=kind)


def test_a_stage_with_an_unknown_module_is_refused():
    for stage_config in (StageConfig, FSTHStageConfig, MetaPortraitStageConfig):
        with pytest.raises(ValueError, match=r"stage full: unknown module\(s\) \['nope'\]; known: "):
            stage_config(name="full", modules=["nope"])
