"""MetaPortrait's meta-learning stage (Reptile, §3.2), starting a run from a release, and personalising from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, assert_same_release
from safetensors.torch import load_file
from torch import nn

from talkinghead.cli import main
from talkinghead.config import load_config
from talkinghead.data.subject import SubjectFrames
from talkinghead.models.pretrained import load_pretrained
from talkinghead.training.finetune import finetune_config, finetune_networks
from talkinghead.training.metaportrait_finetune import finetune_metaportrait_networks, is_meta_learned
from talkinghead.training.recipe import TrainingSetupError
from talkinghead.training.reptile import adapt, mean_deltas, outer_step, parameter_deltas
from talkinghead.training.run import train
from talkinghead.utils.device import torch_threads
from talkinghead.weights.checkpoint import CheckpointManager


TINY = REPO / "configs" / "metaportrait" / "tiny.yaml"
NETWORKS = ("motion_encoder", "flow_network", "refinement_network", "discriminator")


# ------------------------------------------------------------------ Reptile on toy networks
def toy_networks() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {"a": nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)), "b": nn.Linear(2, 2)}


def toy_loss(batch, nets):
    out = nets["b"](nets["a"](batch["x"]))
    loss = (out - batch["y"]).pow(2).mean()
    return loss, {"mse": loss.detach()}


def toy_task(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(5, 3, generator=g), "y": torch.randn(5, 2, generator=g)}


def adam(copies, lr):
    return torch.optim.Adam([p for net in copies.values() for p in net.parameters()], lr=lr)


def snapshot(nets) -> dict[str, list[torch.Tensor]]:
    return {name: [p.detach().clone() for p in net.parameters()] for name, net in nets.items()}


def test_the_inner_loop_does_not_touch_the_initialisation():
    nets = toy_networks()
    for net in nets.values():
        net.requires_grad_(False)  # as in a meta stage: only the copies train
    before = snapshot(nets)
    adapted, losses = adapt(nets, ["a"], toy_loss, toy_task(1), steps=3, lr=1e-2, optimizer=adam)
    for name, net in nets.items():
        for p, q in zip(net.parameters(), before[name]):
            assert torch.equal(p, q) and p.grad is None, name
    assert len(losses) == 3 and losses[-1] < losses[0]  # the copy did learn the task
    assert all(not torch.equal(p, q) for p, q in zip(adapted["a"].parameters(), before["a"]))
    assert set(adapted) == {"a"}  # b is used but not adapted


def test_the_outer_step_moves_every_weight_by_exactly_epsilon_of_the_difference():
    nets = toy_networks()
    for net in nets.values():
        net.requires_grad_(False)
    initial = snapshot(nets)
    adapted, _ = adapt(nets, ["a", "b"], toy_loss, toy_task(2), steps=2, lr=2e-2, optimizer=adam)
    targets = snapshot(adapted)
    epsilon = 0.3
    outer_step(nets, mean_deltas([parameter_deltas(nets, adapted)]), epsilon)
    moved = 0
    for name in ("a", "b"):
        for p, start, end in zip(nets[name].parameters(), initial[name], targets[name]):
            difference = end - start
            assert difference.abs().max() > 0
            torch.testing.assert_close(p - start, epsilon * difference, rtol=0, atol=1e-7)
            moved += p.numel()
    assert moved == sum(p.numel() for net in nets.values() for p in net.parameters())


def test_the_outer_step_averages_the_tasks():
    nets = toy_networks()
    for net in nets.values():
        net.requires_grad_(False)
    initial = snapshot(nets)
    tasks = [parameter_deltas(nets, adapt(nets, ["a"], toy_loss, toy_task(s), steps=2, lr=1e-2, optimizer=adam)[0])
             for s in (3, 4)]
    outer_step(nets, mean_deltas(tasks), 1.0)  # epsilon 1: the mean of the adapted weights
    for i, p in enumerate(nets["a"].parameters()):
        expected = initial["a"][i] + (tasks[0]["a"][i] + tasks[1]["a"][i]) / 2
        torch.testing.assert_close(p, expected, rtol=0, atol=1e-7)


# ----------------------------------------------------------------- the stage in real runs
def tiny_args(data: Path, *extra: str) -> list[str]:
    return ["train", str(TINY), f"data.root={data}", "data.num_workers=0", "data.holdout_fraction=0.25",
            "data.num_eval_clips=2", "stages.0.steps=1", "stages.1.steps=1", "trainer.log_every=1",
            "trainer.eval_every=0", *extra]


def meta_config(tmp_path: Path, init_from: Path, steps: int = 3) -> Path:
    """The tiny preset with one meta stage, starting from ``init_from``."""
    config = yaml.safe_load(TINY.read_text())
    config["stages"] = [{"name": "meta", "steps": steps, "k": 1, "batch_size": 2, "epsilon": 0.5}]
    config["trainer"].update(init_from=str(init_from), checkpoint_every=1, log_every=1, eval_every=0, image_every=100)
    path = tmp_path / "meta.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def meta_args(config: Path, data: Path, run: Path, *extra: str) -> list[str]:
    return ["train", str(config), f"data.root={data}", "data.num_workers=0", "data.holdout_fraction=0.25",
            *extra, "--run-dir", str(run)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every run of this module on one thread: torchrun's ranks get OMP_NUM_THREADS=1, and a
    convolution's backward sums in another order on another thread count (about 1e-6 apart
    after a few steps), so the single-process reference must match them."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def base_run(real_train_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("mp_base") / "run"
    assert main(tiny_args(real_train_data, "--run-dir", str(run))) == 0
    return run


@pytest.fixture(scope="module")
def meta_run(base_run, real_train_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mp_meta")
    run = folder / "run"
    assert main(meta_args(meta_config(folder, base_run / "release"), real_train_data, run)) == 0
    return run


def test_a_meta_run_starts_from_the_release_and_moves_only_the_meta_trained_network(base_run, meta_run):
    log = (meta_run / "train.log").read_text()
    assert f"networks initialised from {base_run / 'release'} (release)" in log
    for name in NETWORKS:
        base = load_file(base_run / "release" / f"{name}.safetensors")
        meta = load_file(meta_run / "release" / f"{name}.safetensors")
        same = all(torch.equal(base[k], meta[k]) for k in base)
        # the default meta modules: the refinement network (what fine-tuning tunes); the rest as loaded
        assert same == (name != "refinement_network"), name
    info = load_pretrained(meta_run / "release").info
    assert info["stages"] == ["meta"] and info["init_from"] == str(base_run / "release")
    assert is_meta_learned(info) and not is_meta_learned(load_pretrained(base_run / "release").info)
    state = CheckpointManager(meta_run).load_latest()
    assert state["stage"] == "meta" and state["stage_step"] == 3 and state["optimizers"] == {}
    # the EMA copy (what a release and fine-tuning read) is the meta-learned initialisation itself
    raw, ema = state["networks"]["refinement_network"], state["ema"]["refinement_network"]["module"]
    assert all(torch.equal(raw[k], ema[k]) for k in raw)


def test_an_interrupted_meta_stage_resumes_to_the_identical_result(base_run, meta_run, real_train_data, tmp_path):
    config = meta_config(tmp_path, base_run / "release")
    run = tmp_path / "run"
    assert main(meta_args(config, real_train_data, run, "--max-steps", "2")) == 0
    assert CheckpointManager(run).load_latest()["stage_step"] == 2
    assert main(meta_args(config, real_train_data, run, "--resume")) == 0
    assert_same_release(meta_run / "release", run / "release", NETWORKS)


def test_init_from_refuses_weights_of_another_architecture(base_run, real_train_data, tmp_path):
    config = load_config(meta_config(tmp_path, base_run / "release"),
                         [f"data.root={real_train_data}", "model.refinement_network.base_channels=8"])
    with pytest.raises(TrainingSetupError) as err:
        train(config, tmp_path / "run")
    message = str(err.value)
    assert "do not fit this run's networks" in message and "refinement_network" in message
    assert "file [64, 64, 3, 3], this run [32, 32, 3, 3]" in message  # a tensor's shapes, in the file and the run
    assert "model.refinement_network.base_channels" in message and "Set the run's model options" in message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_finetune_personalises_from_the_meta_learned_initialisation(base_run, meta_run):
    # two plain frames stand in for a subject: what matters is which weights tuning starts from
    subject = SubjectFrames(torch.zeros(2, 3, 64, 64), torch.zeros(2, 7, 64, 64), ["a", "b"])
    config = finetune_config("metaportrait", values={"steps": 1, "batch_size": 1, "lr": 0.0, "device": "cpu",
                                                     "perceptual": "auto", "modules": ["refinement_network"]})
    for run, expected in ((meta_run, meta_run), (base_run, base_run)):
        tuned = finetune_networks(load_pretrained(run), subject, config)  # lr 0: the weights it started from
        start = load_file(expected / "release" / "refinement_network.safetensors")
        got = tuned.networks["refinement_network"].state_dict()
        assert all(torch.equal(start[k], got[k]) for k in start), run


def test_two_gloo_processes_average_their_tasks_like_one_process(base_run, meta_run, real_train_data, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "talkinghead",
           *meta_args(meta_config(tmp_path, base_run / "release"), real_train_data, run, "trainer.device=cpu")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ranks in sync after meta: 2 processes hold identical weights" in (run / "train.log").read_text()
    # each rank adapted one of the step's two tasks; the averaged move is the single process's
    one = load_file(meta_run / "release" / "refinement_network.safetensors")
    two = load_file(run / "release" / "refinement_network.safetensors")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-6)


def test_finetuning_can_be_observed_after_every_step(meta_run):
    subject = SubjectFrames(torch.zeros(2, 3, 64, 64), torch.zeros(2, 7, 64, 64), ["a", "b"])
    config = finetune_config("metaportrait", values={"steps": 2, "batch_size": 1, "device": "cpu",
                                                     "perceptual": "auto", "modules": ["refinement_network"]})
    def flat(net):
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    seen = []
    tuned = finetune_metaportrait_networks(load_pretrained(meta_run), subject, config,
                                           observe=lambda done, nets: seen.append((done, flat(nets["refinement_network"]))))
    assert [done for done, _ in seen] == [1, 2]
    assert not torch.equal(seen[0][1], seen[1][1])  # it sees the weights as they are after each step
    assert torch.equal(seen[1][1], flat(tuned.networks["refinement_network"]))
