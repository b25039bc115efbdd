from pathlib import Path

import pytest

from talkinghead.cli import main
from talkinghead.config import ConfigError, PrepareConfig, dump_yaml, load_config, to_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_loads_and_round_trips(path, tmp_path):
    config = load_config(path)
    text = dump_yaml(config)
    copy = tmp_path / "copy.yaml"
    copy.write_text(text)
    assert load_config(copy) == config


def test_base_chain_and_overrides():
    config = load_config(CONFIGS / "prepare" / "fsth_eval.yaml", ["crop.scale=2.5", "size=128"])
    assert isinstance(config, PrepareConfig)
    assert config.layout == "fsth-eval"  # from the file itself
    assert config.crop.mode == "none"  # from vox224.yaml
    assert config.landmarks == "mediapipe"  # from default.yaml
    assert config.crop.scale == 2.5 and config.size == 128  # overrides win
    assert config.frames_per_clip == "all"


def test_values_sit_between_file_and_overrides():
    config = load_config(CONFIGS / "prepare" / "tiny.yaml", ["size=96"], values={"size": 80, "crop.scale": 2.0})
    assert config.size == 96
    assert config.crop.scale == 2.0


@pytest.mark.parametrize(
    "override, message",
    [
        (["sise=3"], "unknown key"),
        (["size=big"], "expected an integer"),
        (["landmarks=opencv"], "is not one of"),
        (["crop.scale=-1"], "must be positive"),
        (["frames_per_clip=0"], "frames_per_clip"),
        (["noequals"], "key=value"),
    ],
)
def test_bad_overrides_are_refused_with_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "prepare" / "default.yaml", override)


def test_wrong_kind_and_missing_file(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("kind: train\n")
    with pytest.raises(ConfigError, match="unknown kind"):
        load_config(other)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    cyclic = tmp_path / "a.yaml"
    cyclic.write_text("kind: prepare\nbase: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(cyclic)


def test_defaults_are_defined_once():
    assert to_dict(load_config(None, kind="prepare")) == to_dict(PrepareConfig())


def test_print_config_cli(capsys):
    assert main(["print-config", str(CONFIGS / "prepare" / "vox224.yaml"), "size=200"]) == 0
    out = capsys.readouterr().out
    assert "kind: prepare" in out and "size: 200" in out and "mode: none" in out
    assert main(["print-config", str(CONFIGS / "prepare" / "vox224.yaml"), "size=x"]) == 2
    assert "expected an integer" in capsys.readouterr().err


def test_overrides_address_list_items_by_index(tmp_path):
    import talkinghead.config.lsr  # noqa: F401  (registers the 'lsr' kind)

    path = tmp_path / "run.yaml"
    path.write_text("kind: lsr\nstages:\n  - {name: layout_pretrain, steps: 5}\n  - {name: full, steps: 9}\n")
    config = load_config(path, ["stages.1.steps=20", "stages.0.loss_weights.segmentation=3"])
    assert [s.steps for s in config.stages] == [5, 20]
    assert config.stages[0].loss_weights.segmentation == 3.0
    assert config.stages[0].loss_weights.layout_rgb == 0.01  # other terms keep the stage default
    with pytest.raises(ConfigError, match="stages has 2 item"):
        load_config(path, ["stages.2.steps=1"])
