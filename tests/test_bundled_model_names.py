"""Bundled models load by name in every command, and `animate`/`finetune` use `demo` when none is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from talkinghead.cli import build_parser, main
from talkinghead.utils.bundled import DEFAULT_MODEL, bundled_model, bundled_model_names, resolve_model

REPO = Path(__file__).resolve().parents[1]
PORTRAIT = REPO / "examples" / "portraits" / "sadtalker_happy.png"
DRIVING = REPO / "examples" / "videos" / "liveportrait_d18.mp4"


def test_bundled_names_are_the_model_folders():
    names = bundled_model_names()
    assert {"demo", "lsr_demo"} <= set(names)
    assert "pretrained" not in names  # a folder of frozen networks, not a release
    assert bundled_model("lsr_demo") == REPO / "models" / "lsr_demo"


def test_an_existing_path_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_model("demo") == REPO / "models" / "demo"
    (tmp_path / "demo").mkdir()
    assert resolve_model("demo") == Path("demo")
    assert resolve_model("no_such_model") == Path("no_such_model")  # reported by the caller


@pytest.mark.parametrize("argv", [
    ["animate", "--source", "a.jpg", "--driving", "b.mp4", "--output", "o.mp4", "--checkpoint", "lsr_demo"],
    ["finetune", "--images", "a.jpg", "--output", "o", "--checkpoint", "lsr_demo"],
    ["export", "onnx", "--checkpoint", "lsr_demo", "--output", "o"],
    ["export", "release", "--checkpoint", "lsr_demo", "--output", "o"],
    ["demo", "--checkpoint", "lsr_demo"],
    ["app", "--checkpoint", "lsr_demo"],
])
def test_every_command_takes_a_bundled_name(argv):
    args = build_parser().parse_args(argv)
    checkpoint = args.checkpoint[0] if isinstance(args.checkpoint, list) else args.checkpoint
    assert checkpoint == bundled_model("lsr_demo")


@pytest.mark.parametrize("command", [["animate", "--source", "a.jpg", "--driving", "b.mp4", "--output", "o.mp4"],
                                     ["finetune", "--images", "a.jpg", "--output", "o"]])
def test_animate_and_finetune_default_to_the_demo_model(command):
    assert build_parser().parse_args(command).checkpoint == bundled_model(DEFAULT_MODEL)


def test_evaluate_resolves_a_bundled_name(monkeypatch, tmp_path):
    import talkinghead.evaluation.protocol as protocol

    seen = {}

    class Stop(Exception):
        pass

    def fake_evaluate(target, dataset, output, options, progress=True):
        seen["target"] = target
        raise Stop

    monkeypatch.setattr(protocol, "evaluate", fake_evaluate)
    with pytest.raises(Stop):
        main(["evaluate", "demo", str(tmp_path), "--output", str(tmp_path / "eval")])
    assert Path(seen["target"]) == bundled_model("demo")
    with pytest.raises(Stop):
        main(["evaluate", "landmark-warp", str(tmp_path), "--output", str(tmp_path / "eval2")])
    assert seen["target"] == "landmark-warp"


def test_animate_without_checkpoint_names_the_model_it_used(tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["animate", "--source", str(PORTRAIT), "--driving", str(DRIVING), "--output", str(out),
                 "--max-frames", "3", "--no-progress", "--device", "cpu"]) == 0
    summary = capsys.readouterr().out
    assert "with demo (MetaPortrait, 128 px) ->" in summary and out.is_file()


def test_a_super_resolution_release_is_refused_by_name(tmp_path, capsys):
    assert main(["export", "onnx", "--checkpoint", "upscale", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not a talking-head model" in err and "talkinghead upscale" in err
