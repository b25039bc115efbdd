"""Issue 10, item 5: `weights add` builds the asset's network from the file (strict), so a
structurally wrong file is refused at once instead of failing every clip of a prepare run."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from talkinghead import weights
from talkinghead.cli import main
from talkinghead.data.segmentation_classes import CELEBAMASK_CLASSES
from talkinghead.models.face_parsing import BiSeNetFaceParser

REPO = Path(__file__).resolve().parents[2]


def test_wrong_network_is_refused_and_nothing_installed(tmp_path, capsys):
    wrong = tmp_path / "79999_iter.pth"
    torch.save(load_file(str(REPO / "models" / "lsr_demo" / "layout_encoder.safetensors")), wrong)
    assert main(["weights", "add", "face_parsing", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and "missing key" in err and "nothing was installed" in err
    assert len(err.strip().splitlines()) == 1
    assert not weights.is_available("face_parsing") and weights.registry.recorded_checksum("face_parsing") is None


def test_right_network_is_installed_and_a_wrong_replacement_keeps_it(tmp_path, capsys, real_data):
    torch.manual_seed(0)
    right = tmp_path / "79999_iter.pth"
    torch.save(BiSeNetFaceParser(num_classes=len(CELEBAMASK_CLASSES)).state_dict(), right)
    assert main(["weights", "add", "face_parsing", str(right)]) == 0
    installed = weights.asset_path("face_parsing").read_bytes()
    wrong = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1, 1, 1, 1)}, wrong)
    assert main(["weights", "add", "face_parsing", str(wrong), "--force"]) == 2
    assert weights.asset_path("face_parsing").read_bytes() == installed
    assert not list(weights.asset_path("face_parsing").parent.glob(".*"))
    # The installed file works where it is used: a prepare run on a real video.
    video_dir = tmp_path / "videos"
    video_dir.mkdir()
    (video_dir / "d18.mp4").symlink_to(real_data / "liveportrait_d18.mp4")
    out = tmp_path / "dataset"
    assert main(["prepare", str(video_dir), str(out), "--config", str(REPO / "configs" / "prepare" / "tiny.yaml"),
                 "--frames-per-clip", "2", "--segmentation", "face-parsing", "--no-progress"]) == 0
    assert (out / "clips" / "d18" / "d18" / "segmentation" / "00000.png").is_file()
