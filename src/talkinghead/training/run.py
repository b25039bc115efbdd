"""``talkinghead train CONFIG``: the run driver, the same for every method.

It reads the method from the config, validates the config and data before any compute,
resumes from the latest checkpoint, runs the stages in the order the config lists them
(each starts from the weights the previous one ended with, through the method's recipe)
and exports the release weights at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from talkinghead.config import dump_yaml, flatten, from_dict, to_dict
from talkinghead.config.prepare import preparation_settings
from talkinghead.data.dataset_format import PreparedDataset
from talkinghead.errors import TalkingHeadError
from talkinghead.models.registry import get_method
from talkinghead.training.distributed import DistributedContext, seed_everything
from talkinghead.training.init_from import initialise_from
from talkinghead.training.recipe import TrainingRecipe, TrainingSetupError, get_recipe
from talkinghead.training.standalone import release_dir, standalone_trainer
from talkinghead.training.stage_plumbing import micro_batch_size, stage_dataset, stage_length
from talkinghead.training.trainer import Trainer, TrainingInterrupted
from talkinghead.utils.atomic import atomic_write_text
from talkinghead.utils.modules import parameter_counts
from talkinghead.utils.run_lock import hold_run_dir
from talkinghead.weights.checkpoint import CheckpointManager
from talkinghead.weights.release import save_release


def _saved_model_config(saved: Mapping[str, Any], current: Any) -> dict[str, Any]:
    """The checkpoint's model config, flattened, with options it predates at their defaults.

    A checkpoint written before an option existed has no value for it; it was trained as the
    option's default behaves, so it still matches a config that keeps the default.
    """
    try:
        return flatten(to_dict(from_dict(type(current), saved, "checkpoint model")))
    except (TalkingHeadError, TypeError, ValueError):  # not parseable by today's schema: compare it as written
        return flatten(saved)


def check_checkpoint_matches(state: Mapping[str, Any], config: Any, path: str) -> None:
    """Refuse a checkpoint of another method or architecture, naming what differs."""
    method = state.get("method")
    if method != config.method:
        raise TrainingSetupError(f"{path}: is a checkpoint of method {method!r}, this run trains {config.method!r}")
    saved = _saved_model_config(state.get("config", {}).get("model", {}), config.model)
    current = flatten(to_dict(config.model))
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        lines = [f"  model.{k}: checkpoint {saved.get(k)!r}, config {current.get(k)!r}" for k in diff]
        raise TrainingSetupError(
            f"{path}: was trained with another architecture:\n" + "\n".join(lines)
            + "\nResume with the run's own config (its config.yaml), or start a new run folder"
        )
    saved_stages = [s.get("name") for s in state.get("config", {}).get("stages", [])]
    current_stages = [s.name for s in config.stages]
    if saved_stages[: state["stage_index"] + 1] != current_stages[: state["stage_index"] + 1]:
        raise TrainingSetupError(
            f"{path}: the run's stages were {saved_stages}, the config lists {current_stages}; "
            "the stages up to the checkpoint's must stay the same to resume"
        )


def resume_state(
    run_dir: Path, keep: int, *, resume: bool, check: Callable[[Mapping[str, Any], str], None]
) -> Mapping[str, Any] | None:
    """The checkpoint a run continues from (``resume``), or None for a new run in an empty folder.

    Every training program opens its run folder through here, so "nothing to resume" and
    "already holds checkpoints" read the same for all of them.

    Args:
        run_dir: the run folder.
        keep: checkpoints kept (for the manager reading them).
        resume: continue from the latest checkpoint.
        check: ``check(state, path)`` refuses a checkpoint of another program or architecture.
    """
    manager = CheckpointManager(run_dir, keep=keep)
    if not resume:
        if manager.latest_path() is not None:
            raise TrainingSetupError(
                f"{run_dir}: already holds checkpoints; pass --resume to continue that run, or choose a new folder"
            )
        return None
    state = manager.load_latest()
    if state is None:
        raise TrainingSetupError(manager.nothing_to_resume())
    check(state, str(manager.latest_path()))
    return state


def start_run(trainer: Trainer, config: Any, state: Mapping[str, Any] | None) -> None:
    """Write the run's resolved ``config.yaml`` and load a resumed checkpoint's networks, saying where it resumes."""
    if trainer.context.is_main:
        trainer.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(trainer.run_dir / "config.yaml", dump_yaml(config))
    if state is not None:
        trainer.load_networks(state)
        trainer.logger.info(
            f"resuming stage {state['stage']} at step {state['stage_step']} (global step {state['global_step']})"
        )


def validate(config: Any, context: DistributedContext) -> dict[str, int]:
    """Everything that can be checked before compute: method, stages, data, segmentation, K, batch split.

    Returns:
        The number of steps of every stage.
    """
    recipe = get_recipe(config.method)
    unknown = [s.name for s in config.stages if s.name not in recipe.stages]
    if unknown:
        raise TrainingSetupError(
            f"stages {unknown}: method {config.method!r} has the stages {list(recipe.stages)}"
        )
    if not config.data.root:
        raise TrainingSetupError("data.root is not set: pass data.root=PATH (a folder written by `talkinghead prepare`)")
    if not Path(config.data.root).is_dir():
        raise TrainingSetupError(f"data.root {config.data.root}: no such folder; run `talkinghead prepare` first")
    try:
        prepared = PreparedDataset(config.data.root)
    except Exception as err:  # the reader's own errors name the file
        raise TrainingSetupError(f"data.root {config.data.root}: {err}") from err
    if prepared.size < config.model.image_size:
        print(
            f"warning: {config.data.root} holds {prepared.size} px frames and the model trains at "
            f"{config.model.image_size} px; frames are upsampled"
        )
    lengths = {}
    for stage in config.stages:
        dataset = stage_dataset(config, stage, require_segmentation=recipe.requires_segmentation(stage))
        micro_batch_size(stage, context.world_size, config.trainer.grad_accumulation)
        lengths[stage.name] = stage_length(stage, len(dataset))[0]
    return lengths


def train(
    config: Any,
    run_dir: str | Path,
    *,
    resume: bool = False,
    context: DistributedContext | None = None,
    export: bool = True,
    max_steps: int | None = None,
) -> dict[str, dict[str, float]]:
    """Run every stage of ``config`` into ``run_dir``; returns each stage's last numbers.

    Args:
        config: the run (any registered method's training config).
        run_dir: output folder; it must be new unless ``resume``.
        resume: continue from the latest checkpoint in ``run_dir``.
        context: a distributed context (default: from the torchrun environment).
        export: write the release folder at the end.
        max_steps: stop after this many steps of this invocation (raises
            ``TrainingInterrupted`` after writing a checkpoint).
    """
    run_dir = Path(run_dir)
    recipe = get_recipe(config.method)
    spec = get_method(config.method)
    own_context = context is None
    context = context or DistributedContext.from_env()
    if own_context:
        context.init(config.trainer.device)
    trainer = None
    holding = ExitStack()
    try:
        if context.is_main:  # one training process per run folder (ranks of one job share it)
            holding.enter_context(hold_run_dir(run_dir))
        state = resume_state(run_dir, config.trainer.keep_checkpoints, resume=resume,
                             check=lambda saved, path: check_checkpoint_matches(saved, config, path))
        lengths = validate(config, context)
        resources = recipe.resources(config)
        torch.manual_seed(config.trainer.seed)  # the same on every rank: identical initial weights
        networks = spec.build_networks(config.model)
        seed_everything(config.trainer.seed, context.rank)  # per-rank streams for everything else
        trainer = Trainer(
            method=config.method,
            config=to_dict(config),
            trainer_config=config.trainer,
            run_dir=run_dir,
            networks=networks,
            ema_networks=spec.inference_networks,
            context=context,
            max_steps=max_steps,
        )
        message = getattr(resources, "message", None)
        if message:
            trainer.logger.info(message)
        counts = parameter_counts(networks)
        trainer.logger.info(
            "parameters: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items())
            + "; stages: " + ", ".join(f"{k} {v} steps" for k, v in lengths.items())
        )
        start_run(trainer, config, state)
        if state is None and config.trainer.init_from:
            trainer.logger.info(initialise_from(trainer, config, config.trainer.init_from))
        results = _run_stages(trainer, recipe, config, resources, state, max_steps)
        if export and context.is_main:
            export_release(trainer, config, run_dir / "release")
        context.barrier()
        return results
    finally:
        if trainer is not None:
            trainer.close()
        holding.close()
        if own_context:
            context.shutdown()


def _run_stages(
    trainer: Trainer, recipe: TrainingRecipe, config: Any, resources: Any, state: Mapping | None, max_steps: int | None
) -> dict[str, dict[str, float]]:
    """The config's stages in order, skipping those a resumed checkpoint finished.

    The checkpoint's own stage, finished, is continued when the config now gives it more
    steps than it ran (``--resume stages.N.steps=...``: train longer without a new run).
    """
    results: dict[str, dict[str, float]] = {}
    for index, stage in enumerate(config.stages):
        stage_resume = None
        plan = None
        if state is not None:
            if index < state["stage_index"]:
                continue
            if index == state["stage_index"]:
                stage_resume = state
                if state["stage_complete"]:
                    plan = recipe.stages[stage.name](trainer, config, stage, index, resources)
                    if plan.total_steps <= int(state["stage_step"]):
                        continue
                    trainer.logger.info(f"continuing the finished stage {stage.name} from step "
                                        f"{state['stage_step']} to {plan.total_steps}")
        if trainer.out_of_steps():
            raise TrainingInterrupted(
                f"stopped by --max-steps {max_steps} after stage {config.stages[index - 1].name}; "
                "continue with --resume"
            )
        if plan is None:
            plan = recipe.stages[stage.name](trainer, config, stage, index, resources)
        results[stage.name] = trainer.run_stage(plan, stage_resume)
    return results


def dry_run(config: Any, where: str = "config") -> str:
    """``talkinghead train --dry-run``: check config and data, train nothing; returns the plan as one line.

    Args:
        config: a method's training config, or a standalone program's (e.g. ``kind: upscale``).
        where: the config's file, named when it is of no known method.
    """
    program = standalone_trainer(config)
    if program is not None:
        return program.validate(config)
    get_recipe(getattr(config, "method", None), where=where)
    lengths = validate(config, DistributedContext())
    return "config and data are valid; steps per stage: " + ", ".join(f"{k} {v}" for k, v in lengths.items())


def run_training(
    config: Any, run_dir: str | Path, *, resume: bool = False, max_steps: int | None = None, where: str = "config"
) -> str:
    """``talkinghead train``: train any config (a method's, or a standalone program's) into ``run_dir``.

    Returns:
        What the run ended with, as lines: each stage's last losses and evaluation numbers, and
        where the run folder and its release weights are.

    Raises:
        TrainingInterrupted: stopped early (signal or ``max_steps``) after writing a checkpoint.
    """
    program = standalone_trainer(config)  # a config kind trained outside the method recipes (kind: upscale)
    if program is not None:
        program.train(config, run_dir, resume=resume, max_steps=max_steps)
        return f"run folder: {run_dir} (release weights in {release_dir(run_dir)})"
    get_recipe(getattr(config, "method", None), where=where)  # a training config of a known method
    results = train(config, run_dir, resume=resume, max_steps=max_steps)
    lines = [f"{stage}: " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items() if k.startswith(("eval/", "loss/")))
             for stage, numbers in results.items()]
    return "\n".join([*lines, f"run folder: {run_dir} (release weights in {release_dir(run_dir)})"])


def export_release(trainer: Trainer, config: Any, directory: Path) -> Path:
    """``config.json`` + one safetensors file per network; the inference networks are the EMA weights."""
    nets = trainer.ema_networks()
    modules = {name: nets[name] for name in nets}
    info = {"method": config.method, "model": to_dict(config.model), "global_step": trainer.global_step,
            "weights": "exponential moving average of the generators; discriminator as trained",
            # which stages made these weights (a run ending with a meta-learning stage: its init)
            "stages": [stage.name for stage in config.stages]}
    if config.trainer.init_from:
        info["init_from"] = str(config.trainer.init_from)
    prepare = preparation_settings(config.data.root)
    if prepare is not None:
        info["prepare"] = prepare  # the detector and crop inference must use
    return save_release(directory, info, modules, overwrite=True)
