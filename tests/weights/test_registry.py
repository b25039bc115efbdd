import hashlib

import pytest
import torch

from talkinghead import weights
from talkinghead.cli import main
from talkinghead.weights import registry


def _save(path, state):
    torch.save(state, path)
    return path


def test_require_names_the_file_and_the_command(isolated_home):
    with pytest.raises(weights.MissingWeightsError) as info:
        weights.require("vgg19", "the VGG19 perceptual loss")
    message = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert str(isolated_home) in message
    assert "talkinghead weights add vgg19" in message
    assert "the VGG19 perceptual loss" in message


def test_add_unverified_asset_installs_atomically_and_loads(tmp_path):
    state = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.zeros(4)}
    src = _save(tmp_path / "79999_iter.pth", {"state_dict": {f"module.{k}": v for k, v in state.items()}})
    path, status = weights.add("face_parsing", src)
    assert status == "unverified"
    assert path == weights.asset_path("face_parsing") and path.is_file()
    assert not list(path.parent.glob(".*.tmp"))
    loaded = weights.load_asset_state_dict("face_parsing")
    assert set(loaded) == set(state)  # nesting and module. prefix removed
    assert torch.equal(loaded["conv.weight"], state["conv.weight"])
    assert registry.recorded_checksum("face_parsing")["sha256"] == registry.sha256_of(src)


def test_add_refuses_checksum_mismatch_and_other_contents(tmp_path, monkeypatch):
    src = _save(tmp_path / "w.pth", {"w": torch.ones(2)})
    with pytest.raises(weights.ChecksumError, match="does not match"):
        weights.add("vgg19", src)  # a random file cannot carry vgg19's sha256 prefix
    assert not weights.is_available("vgg19")
    # An asset whose published checksum is this file's: verified.
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    fake = registry.WeightsAsset(name="tiny", filename="tiny.pth", description="d", used_for="u",
                                 url="file:///nowhere", sha256=digest)
    monkeypatch.setitem(registry.ASSETS, "tiny", fake)
    assert weights.add("tiny", src)[1] == "verified"
    other = _save(tmp_path / "o.pth", {"w": torch.zeros(2)})
    monkeypatch.setitem(registry.ASSETS, "tiny", registry.WeightsAsset(
        name="tiny", filename="tiny.pth", description="d", used_for="u", url="file:///nowhere"))
    with pytest.raises(FileExistsError, match="--force"):
        weights.add("tiny", other)
    weights.add("tiny", other, force=True)
    assert torch.equal(weights.load_asset_state_dict("tiny")["w"], torch.zeros(2))


def test_corrupt_and_pickled_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(weights.CorruptWeightsError, match=str(junk)):
        weights.load_state_dict(junk)

    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    evil = tmp_path / "evil.pth"
    torch.save({"w": Evil()}, evil)
    with pytest.raises(weights.CorruptWeightsError):
        weights.load_state_dict(evil)  # weights_only=True never runs the pickled callable
    with pytest.raises(weights.CorruptWeightsError):
        weights.add("face_parsing", evil)
    assert not weights.is_available("face_parsing")


def test_safetensors_files_load(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(3.0)}, str(path))
    assert torch.equal(weights.load_state_dict(path)["a"], torch.arange(3.0))


def test_download_without_network_explains_the_offline_route(monkeypatch):
    monkeypatch.setitem(registry.ASSETS, "vgg19", registry.WeightsAsset(
        name="vgg19", filename="vgg19-dcbb9e9d.pth", description="d", used_for="u",
        url="http://127.0.0.1:9/vgg19.pth", sha256_prefix="dcbb9e9d"))
    with pytest.raises(weights.WeightsError, match="weights add vgg19"):
        weights.download("vgg19", timeout=2, progress=False)
    with pytest.raises(weights.WeightsError, match="no direct download"):
        weights.download("face_parsing", progress=False)
    assert not list(registry.weights_dir().glob("*.part"))


def test_weights_cli(tmp_path, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in weights.ASSETS:
        assert name in out
    assert "missing" in out
    src = _save(tmp_path / "fp.pth", {"w": torch.ones(1)})
    assert main(["weights", "add", "face_parsing", str(src)]) == 2  # not the face parser's keys
    assert "nothing was installed" in capsys.readouterr().err
    from talkinghead.data.segmentation_classes import CELEBAMASK_CLASSES
    from talkinghead.models.face_parsing import BiSeNetFaceParser

    src = _save(tmp_path / "fp.pth", BiSeNetFaceParser(num_classes=len(CELEBAMASK_CLASSES)).state_dict())
    assert main(["weights", "add", "face_parsing", str(src)]) == 0
    assert "not verified" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    assert "present (unverified)" in capsys.readouterr().out
    assert main(["weights", "add", "nosuch", str(src)]) == 2
    assert "unknown weights asset" in capsys.readouterr().err
