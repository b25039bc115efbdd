"""Weights commands: ``export release``, ``export onnx`` and ``weights``."""

from __future__ import annotations

import argparse
from pathlib import Path

from talkinghead.cli.common import MODEL_HELP, preflight
from talkinghead.config.base import default_of
from talkinghead.utils.bundled import resolve_model


def cmd_export_release(args: argparse.Namespace) -> int:
    from talkinghead.training.release_export import ReleaseExportOptions, export_checkpoint_release

    preflight(folder=(args.output, "--output"))
    options = ReleaseExportOptions(use_ema=not args.raw, dtype=args.dtype, generators_only=args.generators_only,
                                   overwrite=args.overwrite)
    print(f"release written to {export_checkpoint_release(args.checkpoint, args.output, options)}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from talkinghead.inference.onnx_export import export_onnx
    from talkinghead.inference.pipeline import AnimationPipeline
    from talkinghead.utils.output_guard import check_output_location, output_errors
    from talkinghead.utils.preflight import above, at_least

    preflight([at_least("--opset", args.opset, 7), above("--tolerance", args.tolerance, 0)],
              folder=(args.output, "--output"))
    check_output_location(args.output, {"checkpoint": args.checkpoint})
    pipeline = AnimationPipeline.from_pretrained(args.checkpoint, device="cpu")
    with output_errors(args.output):
        result = export_onnx(pipeline.model, args.output, opset=args.opset, tolerance=args.tolerance,
                             overwrite=args.overwrite)
    print(
        f"ONNX written to {result.path} (opset {result.opset}, {result.seconds:.1f} s); onnxruntime vs PyTorch "
        f"max abs difference {result.max_abs_diff:.2e} at batch sizes {result.batch_sizes_checked}"
    )
    return 0


def add_export(sub) -> None:
    from talkinghead.inference.onnx_export import export_onnx
    from talkinghead.training.release_export import ReleaseExportOptions
    from talkinghead.weights.release import RELEASE_DTYPES

    p = sub.add_parser("export", help="export trained weights (release folder, ONNX)")
    kinds = p.add_subparsers(dest="export_kind", required=True, metavar="FORMAT")
    r = kinds.add_parser(
        "release",
        help="config.json + one safetensors file per network",
        description="Write the weights of a training checkpoint (EMA generators by default) as a release folder.",
    )
    r.add_argument("--checkpoint", required=True, type=resolve_model, help="checkpoint file or run folder")
    r.add_argument("--output", required=True, type=Path, help="release folder to write")
    r.add_argument("--raw", action="store_true", help="export the raw generator weights instead of the EMA")
    r.add_argument(
        "--dtype", choices=RELEASE_DTYPES, default=default_of(ReleaseExportOptions, "dtype"),
        help="storage precision of the weights (float16 halves the files; loading converts back to float32)",
    )
    r.add_argument(
        "--generators-only", action="store_true",
        help="keep only the networks inference needs (no discriminator: enough for animation; fine-tuning needs it)",
    )
    r.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    r.set_defaults(func=cmd_export_release)
    o = kinds.add_parser(
        "onnx",
        help="the model's per-frame synthesis networks as ONNX, checked with onnxruntime",
        description="Export the model's per-frame synthesis, with the landmark image and the person state "
        "(what the method encodes a source into) as inputs, to OUTPUT/synthesis.onnx, run it in onnxruntime and "
        "report the largest difference from PyTorch.",
    )
    opset, tolerance = default_of(export_onnx, "opset"), default_of(export_onnx, "tolerance")
    o.add_argument("--checkpoint", required=True, type=resolve_model, help=MODEL_HELP)
    o.add_argument("--output", required=True, type=Path, help="folder to write")
    o.add_argument("--opset", type=int, default=opset, help=f"ONNX opset (default {opset})")
    o.add_argument("--tolerance", type=float, default=tolerance,
                   help=f"largest accepted difference from PyTorch (default {tolerance:g})")
    o.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    o.set_defaults(func=cmd_export_onnx)


def cmd_weights(args: argparse.Namespace) -> int:
    from talkinghead import weights

    if args.action == "list":
        from talkinghead.weights.asset_list import describe_assets

        print(describe_assets())
    elif args.action == "path":
        print(weights.registry.installed_path(args.name) or weights.asset_path(args.name))
    elif args.action == "download":
        path, status = weights.download(args.name, progress=not args.no_progress)
        print(f"installed {args.name} at {path} ({status})")
    elif args.action == "add":
        from talkinghead.evaluation.asset_checks import asset_loader

        path, status = weights.add(args.name, args.file, force=args.force, check=asset_loader(args.name))
        note = "" if status == "verified" else " (no published checksum: sha256 recorded, not verified)"
        print(f"installed {args.name} at {path}{note}")
    return 0


def add_weights(sub) -> None:
    p = sub.add_parser(
        "weights",
        help="list, download or install the pretrained networks the papers use",
        description="Pretrained networks (VGG19, VGGFace, LPIPS, Inception, ArcFace, face parsing, FAN) are "
        "never downloaded at run time. `list` shows each and whether it is installed; `download` fetches "
        "one when the network allows; `add` verifies and installs a file you got elsewhere.",
    )
    wsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    wsub.add_parser("list", help="show every asset and whether it is installed")
    pp = wsub.add_parser("path", help="print where an asset is installed")
    pp.add_argument("name", help="asset name (see `weights list`)")
    pd = wsub.add_parser("download", help="download, verify and install an asset")
    pd.add_argument("name", help="asset name (see `weights list`)")
    pd.add_argument("--no-progress", action="store_true", help="no progress bar")
    pa = wsub.add_parser("add", help="verify and install a file you downloaded yourself")
    pa.add_argument("name", help="asset name (see `weights list`)")
    pa.add_argument("file", type=Path, help="the downloaded file")
    pa.add_argument("--force", action="store_true", help="replace an installed file with other contents")
    p.set_defaults(func=cmd_weights)
