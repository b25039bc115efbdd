"""Training commands: ``train`` and ``finetune``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from talkinghead.cli.common import MODEL_HELP, preflight
from talkinghead.config.base import default_of
from talkinghead.utils.bundled import DEFAULT_MODEL, resolve_model


def cmd_train(args: argparse.Namespace) -> int:
    import talkinghead.training  # noqa: F401  (registers every method's recipe and config)
    from talkinghead.config import dump_yaml, load_config
    from talkinghead.training.run import dry_run, run_training
    from talkinghead.training.trainer import TrainingInterrupted
    from talkinghead.utils.preflight import at_least

    preflight([at_least("--max-steps", args.max_steps, 1)],
              folder=None if args.dry_run else (args.run_dir, "--run-dir"))
    config = load_config(args.config, args.overrides)
    if args.dry_run:
        sys.stdout.write(dump_yaml(config))
        print("# dry run: " + dry_run(config, where=str(args.config)))
        return 0
    try:
        print(run_training(config, args.run_dir, resume=args.resume, max_steps=args.max_steps, where=str(args.config)))
    except TrainingInterrupted as stop:
        print(str(stop), file=sys.stderr)
        return 128 + stop.by_signal if stop.by_signal is not None else 0  # 130 SIGINT, 143 SIGTERM
    return 0


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model of any method (the config names it and its stages)",
        description="Train the stages listed in CONFIG in order into RUN_DIR: checkpoints, TensorBoard logs, "
        "sample grids, the resolved config and, at the end, release weights (config.json + safetensors). "
        "For several GPUs or nodes, start it with torchrun (torchrun --nproc_per_node=N -m talkinghead train ...).",
    )
    p.add_argument("config", type=Path, help="training config YAML; its 'kind' is the method (e.g. configs/lsr/tiny.yaml)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.root=prepared/ stages.0.steps=100")
    p.add_argument("--run-dir", required=True, type=Path, help="output folder of the run")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--dry-run", action="store_true", help="check the config and the data, print the plan, train nothing")
    p.add_argument(
        "--max-steps", type=int, help="stop after this many steps (checkpoint written), e.g. to fit a job time limit"
    )
    p.set_defaults(func=cmd_train)


def cmd_finetune(args: argparse.Namespace) -> int:
    from talkinghead.models.pretrained import load_pretrained
    from talkinghead.training.finetune import finetune, finetune_config
    from talkinghead.utils.preflight import at_least

    preflight([at_least("--frames-per-video", args.frames_per_video, 1)], folder=(args.output, "--output"))
    pretrained = load_pretrained(args.checkpoint)
    config = finetune_config(pretrained.method, args.config, args.overrides)
    result = finetune(
        pretrained, args.images, args.output, config,
        frames_per_video=args.frames_per_video, overwrite=args.overwrite,
    )
    print(result.format())
    return 0


def add_finetune(sub) -> None:
    from talkinghead.training.finetune import finetune

    p = sub.add_parser(
        "finetune",
        help="personalise a trained model to one person from a few images (LSR §3.5, FSTH, MetaPortrait)",
        description="Prepare the person's images (or frames of a video) with the training detector and crop, "
        "fine-tune the model on them with its method's recipe (its own stages and losses) and write a release "
        "folder with the tuned weights and the person's state.",
    )
    p.add_argument("--checkpoint", type=resolve_model, default=DEFAULT_MODEL,
                   help=MODEL_HELP + f" (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--images", required=True, nargs="+", help="images, videos or folders of the person")
    p.add_argument("--output", required=True, type=Path, help="release folder to write")
    p.add_argument("--config", type=Path, help="fine-tuning config YAML of the model's method "
                   "(e.g. kind lsr_finetune, configs/lsr/finetune.yaml); the method's defaults otherwise")
    p.add_argument(
        "--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
        help="config overrides, e.g. --set steps=200 lr=5e-5",
    )
    frames = default_of(finetune, "frames_per_video")
    p.add_argument("--frames-per-video", type=int, default=frames,
                   help=f"frames sampled from each video (default {frames})")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=cmd_finetune)
