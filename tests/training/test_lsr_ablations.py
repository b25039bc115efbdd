"""LSR Table 2's five ablation variants (§4.4): each config trains a few steps and renders what it should."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import REPO
from talkinghead.cli import main
from talkinghead.config import load_config
from talkinghead.models import load_pretrained
from talkinghead.models.lsr import LSRModel, OracleSynthesisError

ABLATIONS = REPO / "configs" / "lsr" / "ablations"
VARIANTS = {
    "1_baseline_adain.yaml": ("adain_unet", {"layout_encoder", "layout_generator"}),
    "2_spade.yaml": ("landmarks", {"style_encoder", "image_generator"}),
    "3_learned_segmentation.yaml": ("layout", {"layout_encoder", "style_encoder", "layout_generator", "image_generator"}),
    "4_latent_layout.yaml": ("layout", {"layout_encoder", "style_encoder", "layout_generator", "image_generator"}),
    "5_oracle_segmentation.yaml": ("oracle", {"style_encoder", "image_generator"}),
}


def test_the_five_variants_are_there():
    assert sorted(p.name for p in ABLATIONS.glob("*.yaml")) == sorted(VARIANTS)
    configs = {name: load_config(ABLATIONS / name) for name in VARIANTS}
    steps = {name: sum(s.steps for s in c.stages) for name, c in configs.items()}
    assert len(set(steps.values())) == 1, steps  # every variant trains for the same number of steps
    assert configs["3_learned_segmentation.yaml"].stages[-1].loss_weights.segmentation > 0
    assert configs["4_latent_layout.yaml"].stages[-1].loss_weights.segmentation == 0


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_trains_a_few_steps(name, real_train_data, tmp_path):
    synthesis, runs = VARIANTS[name]
    config = load_config(ABLATIONS / name)
    args = ["train", str(ABLATIONS / name), f"data.root={real_train_data}", "data.num_workers=0",
            "data.holdout_fraction=0.25", "data.num_eval_clips=2", "trainer.log_every=1", "trainer.eval_every=2",
            "trainer.image_every=2"]
    for i in range(len(config.stages)):
        args += [f"stages.{i}.steps=2", f"stages.{i}.k=2", f"stages.{i}.batch_size=2", f"stages.{i}.warmup_steps=0"]
    run = tmp_path / "run"
    assert main([*args, "--run-dir", str(run)]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = {k for r in records for k in r}
    assert "full/loss/G/l1" in keys and "full/loss/D/d_logistic" in keys
    assert ("full/loss/G/segmentation" in keys) == (name == "3_learned_segmentation.yaml")
    assert any(k.startswith("full/eval/") or k.startswith("eval/") for k in keys), sorted(keys)[:20]
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))

    pretrained = load_pretrained(run / "release")
    assert pretrained.config.synthesis == synthesis
    model = pretrained.inference_model().eval()
    assert set(model.synthesis_networks()) == runs & {"layout_generator", "image_generator"}
    torch.manual_seed(0)
    images, landmarks = torch.rand(1, 2, 3, 64, 64) * 2 - 1, torch.rand(1, 2, 3, 64, 64) * 2 - 1
    state = model.encode(images, landmarks)
    if synthesis == "oracle":
        with pytest.raises(OracleSynthesisError, match="cannot animate"):
            model(landmarks[:, 0], state)
    else:
        with torch.no_grad():
            out = model(landmarks[:, 0], state)
        assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_unused_networks_of_a_variant_stay_untouched(real_train_data, tmp_path):
    """+SPADE never runs E_l or G_l: their released weights are the initial ones."""
    run = tmp_path / "spade"
    config = ABLATIONS / "2_spade.yaml"
    assert main(["train", str(config), f"data.root={real_train_data}", "data.num_workers=0", "stages.0.steps=2",
                 "stages.0.k=2", "stages.0.batch_size=2", "stages.0.warmup_steps=0", "trainer.ema_decay=0",
                 "--run-dir", str(run)]) == 0
    pretrained = load_pretrained(run / "release")
    torch.manual_seed(0)  # the run's initial weights
    initial = LSRModel(pretrained.config).state_dict()
    trained = pretrained.inference_model().state_dict()
    for key in initial:
        same = torch.equal(initial[key], trained[key])
        if key.startswith(("layout_encoder.", "layout_generator.")):
            assert same, key
    assert not all(torch.equal(initial[k], trained[k]) for k in initial if k.startswith("image_generator."))
