from pathlib import Path

import pytest

from talkinghead.cli import main
from talkinghead.config import CONFIG_KINDS, default_of, ConfigError, PrepareConfig, dump_yaml, load_config, to_dict

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


@pytest.mark.parametrize("kind", sorted(CONFIG_KINDS))
def test_defaults_are_defined_once(kind):
    # Every config kind: loading without a file gives exactly the schema's defaults.
    assert to_dict(load_config(None, kind=kind)) == to_dict(CONFIG_KINDS[kind]())


def test_command_line_defaults_come_from_the_option_dataclasses():
    from talkinghead.cli import build_parser
    from talkinghead.evaluation.options import EvaluateOptions
    from talkinghead.inference.animate_job import AnimateJob
    from talkinghead.inference.options import AnimateOptions

    parser = build_parser()
    animate = parser.parse_args(["animate", "--checkpoint", "c", "--driving", "d", "--output", "o"])
    for name, value in vars(AnimateOptions()).items():
        if name not in ("paste_back", "canonical_frame"):  # canonical_frame: for before/after benchmarks only
            assert getattr(animate, name) == value, name
    for name in ("finetune_steps", "source_face_index", "neutral_frame", "fps", "device"):
        assert getattr(animate, name) == default_of(AnimateJob, name), name
    evaluate = parser.parse_args(["evaluate", "c", "d", "--output", "o"])
    options = EvaluateOptions()
    pairs = {"k": "ks", "landmarks": "landmark_backend"}
    for arg in ("k", "finetune_steps", "split", "holdout_fraction", "targets_per_video", "metrics", "id_network",
                "landmarks", "seed", "device", "batch_size", "workers"):
        assert getattr(evaluate, arg) == getattr(options, pairs.get(arg, arg)), arg


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
