"""The generic trainer on toy networks: phases, accumulation, NaN stop, frozen parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from talkinghead.config.training import TrainerConfig
from talkinghead.weights.checkpoint import CheckpointManager
from talkinghead.training.distributed import DistributedContext
from talkinghead.training.trainer import NonFiniteLossError, Phase, StagePlan, Trainer, TrainingInterrupted

TARGET = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
INPUTS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]])


def _trainer(tmp_path, **options) -> Trainer:
    torch.manual_seed(0)
    networks = {"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)}
    config = TrainerConfig(device="cpu", ema_decay=0.5, log_every=1, checkpoint_every=2, **options)
    return Trainer(
        method="toy",
        config={"method": "toy"},
        trainer_config=config,
        run_dir=tmp_path,
        networks=networks,
        ema_networks=["a"],
        context=DistributedContext(env={}).init("cpu"),
    )


def _plan(trainer: Trainer, *, steps: int = 4, accumulation: int = 1, loss=None, trained=("a",), frozen=None):
    def mse(batch, nets):
        value = (nets["a"](batch["x"]) - batch["y"]).pow(2).mean()
        return value, {"mse": value}

    def batches(start):
        for _ in range(start, steps):
            size = len(INPUTS) // accumulation
            yield [{"x": INPUTS[i * size : (i + 1) * size], "y": TARGET[i * size : (i + 1) * size]}
                   for i in range(accumulation)]

    params = [p for name in trained for p in trainer.networks[name].parameters()]
    return StagePlan(
        name="toy",
        index=0,
        total_steps=steps,
        steps_per_epoch=steps,
        trained=list(trained),
        optimizers={"opt": torch.optim.SGD(params, lr=0.1)},
        base_lr=0.1,
        warmup_steps=0,
        decay_steps=0,
        decay_factor=1.0,
        phases=[Phase("main", "opt", list(trained), loss or mse)],
        batches=batches,
        frozen_parameters=frozen or {},
    )


def test_a_phase_updates_only_its_networks_and_the_loss_falls(tmp_path):
    trainer = _trainer(tmp_path)
    b_before = [p.clone() for p in trainer.networks["b"].parameters()]
    with torch.no_grad():
        first = float((trainer.networks["a"](INPUTS) - TARGET).pow(2).mean())
    logs = trainer.run_stage(_plan(trainer, steps=6))
    assert logs["loss/main/mse"] < first
    assert all(torch.equal(p, q) for p, q in zip(b_before, trainer.networks["b"].parameters()))
    assert trainer.global_step == 6
    # the EMA moved towards the trained weights but is not them
    assert not torch.equal(trainer.ema["a"].module.weight, trainer.networks["a"].weight)
    trainer.close()


def test_gradient_accumulation_matches_one_large_batch(tmp_path):
    one = _trainer(tmp_path / "one")
    one.run_stage(_plan(one, steps=3, accumulation=1))
    two = _trainer(tmp_path / "two", grad_accumulation=2)
    two.run_stage(_plan(two, steps=3, accumulation=2))
    for p, q in zip(one.networks["a"].parameters(), two.networks["a"].parameters()):
        torch.testing.assert_close(p, q)
    one.close()
    two.close()


def test_frozen_parameters_stay_fixed(tmp_path):
    trainer = _trainer(tmp_path)
    bias = trainer.networks["a"].bias.clone()
    trainer.run_stage(_plan(trainer, frozen={"a": lambda name: name == "bias"}))
    assert torch.equal(trainer.networks["a"].bias, bias)
    trainer.close()


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = _trainer(tmp_path)
    calls = {"n": 0}

    def exploding(batch, nets):
        calls["n"] += 1
        value = (nets["a"](batch["x"]) - batch["y"]).pow(2).mean()
        if calls["n"] == 4:
            value = value * float("nan")
        return value, {"mse": value}

    with pytest.raises(NonFiniteLossError, match=r"step 3, phase main.*last good state"):
        trainer.run_stage(_plan(trainer, steps=6, loss=exploding))
    trainer.close()
    manager = CheckpointManager(tmp_path)
    state = manager.load_latest()
    assert state["stage_step"] == 2 and state["global_step"] == 2
    assert len(manager.checkpoints()) == 1


def test_max_steps_writes_a_checkpoint_and_resume_continues(tmp_path):
    whole = _trainer(tmp_path / "whole")
    whole.run_stage(_plan(whole, steps=5))
    part = _trainer(tmp_path / "part")
    part.max_steps = 3
    with pytest.raises(TrainingInterrupted, match="max-steps 3 at step 3"):
        part.run_stage(_plan(part, steps=5))
    part.close()
    resumed = _trainer(tmp_path / "part")
    state = CheckpointManager(tmp_path / "part").load_latest()
    resumed.load_networks(state)
    resumed.run_stage(_plan(resumed, steps=5), resume=state)
    for p, q in zip(whole.networks["a"].parameters(), resumed.networks["a"].parameters()):
        assert torch.equal(p, q)
    whole.close()
    resumed.close()
