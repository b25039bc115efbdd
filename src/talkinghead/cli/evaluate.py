"""The ``evaluate`` command: a model (or a reference method) on a test set, or ``--compare`` of earlier runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from talkinghead.cli.common import preflight


def cmd_evaluate(args: argparse.Namespace) -> int:
    from talkinghead.errors import InvalidInputError
    from talkinghead.evaluation.write_reports import write_reports
    from talkinghead.utils.bundled import resolve_model
    from talkinghead.utils.preflight import above, at_least

    preflight([*(at_least("--k", k, 1) for k in args.k), at_least("--finetune-steps", args.finetune_steps, 0),
               above("--holdout-fraction", args.holdout_fraction, 0), at_least("--max-videos", args.max_videos, 1),
               at_least("--targets-per-video", args.targets_per_video, 0),
               at_least("--batch-size", args.batch_size, 1), at_least("--workers", args.workers, 0)],
              folder=(args.output, "--output"))
    if args.compare:
        if args.target:
            raise InvalidInputError("--compare takes results.json files only; leave out CHECKPOINT and DATASET")
        from talkinghead.evaluation.compare import compare_result_files

        results = compare_result_files(args.compare, args.output)
    else:
        if len(args.target) != 2:
            raise InvalidInputError(
                "give CHECKPOINT DATASET (a checkpoint or copy-source / landmark-warp, and a prepared test set), "
                "or --compare A/results.json B/results.json"
            )
        from talkinghead.evaluation.options import EvaluateOptions
        from talkinghead.evaluation.protocol import evaluate

        options = EvaluateOptions(
            ks=args.k, finetune_steps=args.finetune_steps, cross=args.cross, split=args.split or None,
            holdout_fraction=args.holdout_fraction, max_videos=args.max_videos,
            targets_per_video=args.targets_per_video, metrics=args.metrics, id_network=args.id_network,
            landmark_backend=args.landmarks, seed=args.seed, device=args.device, batch_size=args.batch_size,
            workers=args.workers, output_size=args.output_size, mouth=args.mouth,
        )
        # a bundled name (demo) becomes its folder; paths and reference methods (landmark-warp) pass through
        results = evaluate(str(resolve_model(args.target[0])), args.target[1], args.output, options,
                           progress=not args.no_progress)
    paths = write_reports(results, args.output)
    summary = Path(paths.get("summary", Path(args.output) / "summary.md"))
    print(summary.read_text() if summary.is_file() else "")
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_evaluate(sub) -> None:
    from talkinghead.config.base import default_of
    from talkinghead.evaluation.options import EvaluateOptions

    def default(name: str):
        return default_of(EvaluateOptions, name)

    p = sub.add_parser(
        "evaluate",
        help="measure a model (or a reference method) with the FSTH/LSR protocol",
        description="For every test video, encode K shots from its input frames and reproduce its hold-out frames "
        "(self-reenactment) or another identity's (--cross); report PSNR, SSIM, LPIPS, ID-SIM, NMKE, FID and E_warp "
        "per frame, per video and as LSR-style tables and plots. CHECKPOINT may be a bundled model by name (demo), copy-source or landmark-warp "
        "(reference methods needing no training). Per-video results are cached in OUTPUT/cache: run the same "
        "command again to resume.",
    )
    p.add_argument("target", nargs="*", metavar="CHECKPOINT DATASET",
                   help="checkpoint (release folder, file, run folder) or copy-source / landmark-warp; prepared test set")
    p.add_argument("--output", required=True, type=Path, help="report folder")
    p.add_argument("--compare", nargs="+", type=Path, metavar="RESULTS",
                   help="merge results.json files of earlier runs into one table and one set of plots")
    p.add_argument("--k", nargs="+", type=int, default=default("ks"),
                   help=f"numbers of input shots (default {' '.join(map(str, default('ks')))})")
    p.add_argument("--finetune-steps", type=int, default=default("finetune_steps"), metavar="N",
                   help="also evaluate models fine-tuned N steps on the shots (LSR's fine-tuned columns)")
    p.add_argument("--cross", action="store_true",
                   help="cross-identity reenactment: drive each person with another identity's hold-out frames")
    p.add_argument("--split", default=default("split"),
                   help=f"dataset split to evaluate (default {default('split')}; '' = every clip)")
    p.add_argument("--holdout-fraction", type=float, default=default("holdout_fraction"),
                   help=f"hold-out tail of clips without input/hold-out roles (default {default('holdout_fraction')})")
    p.add_argument("--max-videos", type=int, help="evaluate only the first N videos")
    p.add_argument("--targets-per-video", type=int, default=default("targets_per_video"),
                   help=f"hold-out frames per video (0 = all; default {default('targets_per_video')})")
    p.add_argument("--metrics", nargs="+", default=default("metrics"), help="metrics to compute")
    p.add_argument("--id-network", choices=("dlib-resnet", "dlib", "vggface", "arcface"), default=default("id_network"),
                   help="identity network of ID-SIM (dlib-resnet: dlib's ResNet in PyTorch, batched, offline; dlib: "
                   "the same network in dlib's C++; LSR used VGGFace, FSTH/LPD ArcFace)")
    p.add_argument("--landmarks", default=default("landmark_backend"),
                   help=f"landmark backend of NMKE (default {default('landmark_backend')})")
    p.add_argument("--seed", type=int, default=default("seed"), help="seed of the shot selection")
    p.add_argument("--device", default=default("device"), help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=default("batch_size"), help="frames synthesised per call")
    p.add_argument("--workers", type=int, default=default("workers"), help="threads loading upcoming videos")
    p.add_argument("--output-size", type=int, metavar="PX",
                   help="compare frames at this size (default: the model's); MetaPortrait warps the shots at it")
    p.add_argument("--no-mouth", dest="mouth", action="store_false",
                   help="do not let the model's mouth generator paint the mouth's opening (default: it does, "
                   "when the model has one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)
