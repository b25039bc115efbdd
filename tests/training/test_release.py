"""Release folders: config.json + safetensors, written atomically, read with clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from talkinghead.weights.release import ReleaseError, load_release, save_release
from talkinghead.utils import atomic


def tiny_networks() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {"encoder": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), "head": nn.Linear(4, 2)}


def test_round_trip(tmp_path):
    networks = tiny_networks()
    config = {"image_size": 64, "encoder": {"channels": [4, 8]}}
    out = save_release(tmp_path / "release", config, networks, extra_files={"README.md": "# tiny\n"})
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "encoder.safetensors", "head.safetensors", "release.json"
    ]
    loaded_config, states = load_release(out)
    assert loaded_config == config
    assert set(states) == {"encoder", "head"}
    for name, net in networks.items():
        expected = net.state_dict()
        assert states[name].keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(states[name][key], value)
        fresh = tiny_networks()[name]
        fresh.load_state_dict(states[name])
    assert not list(tmp_path.glob(".*"))  # no temporary folder left behind


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's dynamo import
def test_wrapped_module_and_shared_or_strided_tensors(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.out = nn.Linear(3, 5, bias=False)
            self.out.weight = self.embed.weight  # tied weights share one storage

    base = torch.arange(12.0).reshape(3, 4)
    state = {"full": base, "column": base[:, 1], "transposed": base.t()}  # views, non-contiguous
    compiled = torch.compile(Tied())  # OptimizedModule wrapper: keys must not get _orig_mod.
    save_release(tmp_path / "r", {}, {"tied": compiled, "views": state})
    _, states = load_release(tmp_path / "r")
    assert set(states["tied"]) == {"embed.weight", "out.weight"}
    assert torch.equal(states["tied"]["embed.weight"], states["tied"]["out.weight"])
    for key, value in state.items():
        assert torch.equal(states["views"][key], value)


def test_refuses_to_overwrite_unless_asked(tmp_path):
    target = tmp_path / "release"
    save_release(target, {"v": 1}, {"head": nn.Linear(2, 2)})
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_release(target, {"v": 2}, {"head": nn.Linear(2, 2)})
    assert load_release(target)[0] == {"v": 1}
    save_release(target, {"v": 2}, {"other": nn.Linear(2, 2)}, overwrite=True)
    config, states = load_release(target)
    assert config == {"v": 2} and set(states) == {"other"}
    assert not (target / "head.safetensors").exists()
    assert not list(tmp_path.glob(".*"))


def test_overwrite_without_atomic_exchange(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange_paths", lambda a, b: False)
    target = tmp_path / "release"
    save_release(target, {"v": 1}, {"head": nn.Linear(2, 2)})
    save_release(target, {"v": 2}, {"head": nn.Linear(2, 2)}, overwrite=True)
    assert load_release(target)[0] == {"v": 2}
    assert not list(tmp_path.glob(".*"))


def test_empty_existing_folder_is_used(tmp_path):
    (tmp_path / "release").mkdir()
    save_release(tmp_path / "release", {}, {"head": nn.Linear(2, 2)})
    assert (tmp_path / "release" / "head.safetensors").is_file()


def test_failed_save_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        save_release(tmp_path / "release", {"bad": object()}, {"head": nn.Linear(2, 2)})
    with pytest.raises(TypeError, match="not a tensor"):
        save_release(tmp_path / "release", {}, {"head": {"w": torch.zeros(1), "n": 3}})
    with pytest.raises(ValueError, match="reserved"):
        save_release(tmp_path / "release", {}, {"head": nn.Linear(2, 2)}, extra_files={"config.json": "{}"})
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_files_are_named(tmp_path):
    target = tmp_path / "release"
    with pytest.raises(ReleaseError, match="not found"):
        load_release(target)
    save_release(target, {"v": 1}, {"head": nn.Linear(2, 2), "tail": nn.Linear(2, 2)})

    weights = target / "head.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(ReleaseError, match="head.safetensors.*truncated or corrupt"):
        load_release(target)
    weights.unlink()
    with pytest.raises(ReleaseError, match="head.safetensors: missing"):
        load_release(target)

    (target / "config.json").write_text("{not json")
    with pytest.raises(ReleaseError, match="config.json: is not valid JSON"):
        load_release(target)
    (target / "config.json").unlink()
    with pytest.raises(ReleaseError, match="config.json: missing"):
        load_release(target)
    (target / "release.json").write_text(json.dumps({"format": 1}))
    with pytest.raises(ReleaseError, match="release.json"):
        load_release(target)


def test_interrupted_overwrite_points_at_the_backup(tmp_path):
    (tmp_path / ".release.abcd1234.old").mkdir()
    with pytest.raises(ReleaseError, match="rename it back"):
        load_release(tmp_path / "release")
