"""Data commands: ``prepare``, ``prepare-sr``, ``inspect`` and ``print-config``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from talkinghead.cli.common import OVERRIDES_HELP, preflight
from talkinghead.config.base import default_of

# Command-line flags of `prepare` and the config keys they set.
_PREPARE_FLAGS = {
    "layout": "layout",
    "frames_per_clip": "frames_per_clip",
    "landmarks": "landmarks",
    "crop": "crop.mode",
    "crop_scale": "crop.scale",
    "crop_offset": "crop.vertical_offset",
    "size": "size",
    "segmentation": "segmentation",
    "image_format": "image_format",
    "face_index": "face_index",
    "min_face_size": "min_face_size",
    "min_frames": "min_frames",
    "split_by": "split_by",
    "test_fraction": "test_fraction",
    "identity_from": "identity_from",
}

# `prepare-sr` options: SRPrepareSettings field -> help (the defaults come from the dataclass).
_SR_SETTINGS_HELP = {
    "size": "side of the ground-truth crops in pixels; the input is half of it",
    "min_source_side": "smallest crop side in source pixels a clip needs to be used",
    "train_segments": "runs of consecutive frames per training clip",
    "train_length": "frames per training run",
    "test_segments": "runs per held-out clip",
    "test_length": "frames per held-out run",
    "jpeg_quality": "JPEG quality of the degraded input (100 = no compression)",
}


def _frames_per_clip(text: str):
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _shard(text: str):
    from talkinghead.data.sources import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def cmd_print_config(args: argparse.Namespace) -> int:
    from talkinghead.config import dump_yaml, load_config

    sys.stdout.write(dump_yaml(load_config(args.config, args.overrides, kind=args.kind)))
    return 0


def add_print_config(sub) -> None:
    p = sub.add_parser(
        "print-config",
        help="print a fully resolved config (file + base chain + overrides)",
        description="Load a YAML config (following its 'base:' chain), apply key=value overrides, "
        "check every value against the schema and print the result as YAML.",
    )
    p.add_argument("config", type=Path, nargs="?", help="YAML config file (omit with --kind to see defaults)")
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--kind", help="schema to use when no file is given (e.g. prepare)")
    p.set_defaults(func=cmd_print_config)


def cmd_prepare(args: argparse.Namespace) -> int:
    from talkinghead.config import load_config
    from talkinghead.data.prepare import RunOptions, prepare_dataset
    from talkinghead.utils.preflight import above, at_least

    preflight([at_least("--workers", args.workers, 1), at_least("--size", args.size, 1),
               above("--crop-scale", args.crop_scale, 0), at_least("--face-index", args.face_index, 0),
               at_least("--min-face-size", args.min_face_size, 0), at_least("--min-frames", args.min_frames, 1),
               at_least("--test-fraction", args.test_fraction, 0)],
              folder=(args.output, "OUTPUT"))
    flags = {key: getattr(args, flag) for flag, key in _PREPARE_FLAGS.items() if getattr(args, flag) is not None}
    config = load_config(args.config, args.overrides, kind="prepare", values=flags)
    options = RunOptions(workers=args.workers, shard=args.shard, strict=args.strict,
                         retry_failed=args.retry_failed, progress=not args.no_progress)
    summary = prepare_dataset(args.input, args.output, config, options)
    print(summary.format())
    code = summary.exit_code(args.strict)
    if code and summary.dataset_clips == 0:
        print("error: no usable clip was produced; see the failures above", file=sys.stderr)
    return code


def add_prepare(sub) -> None:
    from talkinghead.config.prepare import CropConfig, PrepareConfig
    from talkinghead.data.prepare import RunOptions

    p = sub.add_parser(
        "prepare",
        help="turn raw talking-head videos into a training/evaluation dataset",
        description="Decode each clip, sample frames uniformly in time, detect the face and its "
        "landmarks, crop one stable square around the head, draw the oracle segmentation and write "
        "the clip atomically. Re-running resumes: finished clips are skipped. Problems are recorded "
        "per clip in OUTPUT/report.json and the batch goes on.",
    )
    p.add_argument("input", type=Path, help="a video, a folder of images, or a folder of videos/image folders "
                   "(any depth; VoxCeleb2 identity/video/clip.mp4 is recognised)")
    p.add_argument("output", type=Path, help="dataset folder to write (created if missing)")
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--config", type=Path, help="prepare config YAML (default: the schema defaults; "
                   "see configs/prepare/)")
    g = p.add_argument_group("what is written (override the config)")
    g.add_argument("--layout", choices=["auto", "fsth-eval"], help="input layout; fsth-eval reads "
                   "ROOT/{train,test}/ID/VIDEO/combined/NNNNN_rgb.png")
    g.add_argument("--frames-per-clip", type=_frames_per_clip, metavar="N|all",
                   help="frames sampled uniformly in time per clip (LSR: 10), or 'all'")
    g.add_argument("--landmarks", choices=["mediapipe", "dlib68", "fan"], help="landmark backend "
                   "(mediapipe: 478 dense points, offline; dlib68: 68 points, offline; fan: needs weights)")
    g.add_argument("--crop", choices=["head", "none"], help="'head': one square per clip around the head; "
                   "'none': keep already-cropped frames (centre square)")
    g.add_argument("--crop-scale", type=float, help=f"crop side relative to the landmark box (default {default_of(CropConfig, 'scale'):g})")
    g.add_argument("--crop-offset", type=float, help="upward shift of the crop centre, fraction of its side")
    g.add_argument("--size", type=int, help=f"output frame side in pixels (default {default_of(PrepareConfig, 'size')}; "
                   "LSR trains at 224)")
    g.add_argument("--segmentation", choices=["auto", "landmarks", "face-parsing", "none"],
                   help="oracle segmentation; auto = face-parsing when its weights are installed, else landmarks")
    g.add_argument("--image-format", choices=["jpg", "png"], help="format of the written frames")
    g.add_argument("--face-index", type=int, help="face to follow when several are visible (0 = the largest clear face: size x confidence)")
    g.add_argument("--min-face-size", type=int, help="reject faces smaller than this many source pixels")
    g.add_argument("--min-frames", type=int, help="skip clips with fewer usable frames")
    g.add_argument("--split-by", choices=["none", "identity"], help="'identity': train/test with disjoint identities")
    g.add_argument("--test-fraction", type=float, help="fraction of identities in the test split")
    g.add_argument("--identity-from", choices=["auto", "parent", "stem"], help="where a clip's identity comes from")
    r = p.add_argument_group("how it runs")
    workers = default_of(RunOptions, "workers")
    r.add_argument("--workers", type=int, default=workers, help=f"parallel processes (default {workers})")
    r.add_argument("--shard", type=_shard, metavar="I/N", help="process only slice I of N (0-based), for array jobs")
    r.add_argument("--strict", action="store_true", help="exit non-zero when any clip failed or lost frames")
    r.add_argument("--retry-failed", action="store_true", help="process again clips that failed in an earlier run")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare_sr(args: argparse.Namespace) -> int:
    from talkinghead.data.sr_prepare import SRPrepareSettings, prepare_sr_windows
    from talkinghead.utils.preflight import at_least

    preflight([at_least(f"--{name.replace('_', '-')}", getattr(args, name), 1) for name in _SR_SETTINGS_HELP],
              folder=(args.output, "OUTPUT"))
    settings = SRPrepareSettings(**{name: getattr(args, name) for name in _SR_SETTINGS_HELP})
    index = prepare_sr_windows(args.prepared, args.videos, args.output, settings)
    splits = [segment["split"] for segment in index["segments"]]
    print(f"{args.output}: {splits.count('train')} training and {splits.count('test')} held-out segments")
    return 0


def add_prepare_sr(sub) -> None:
    from talkinghead.data.sr_prepare import SRPrepareSettings

    p = sub.add_parser(
        "prepare-sr",
        help="write consecutive-frame windows for training the super-resolution model (train kind: upscale)",
        description="Reuse a prepared dataset's per-clip head crop and identity split, re-read its source "
        "videos and write runs of consecutive frames at full size (the ground truth) with their degraded "
        "half-size inputs (MetaPortrait §3.3). Finished clips are skipped: re-running resumes.",
    )
    p.add_argument("prepared", type=Path, help="dataset folder written by `talkinghead prepare`")
    p.add_argument("videos", type=Path, help="the folder that dataset was prepared from")
    p.add_argument("output", type=Path, help="output folder (created if missing)")
    for name, text in _SR_SETTINGS_HELP.items():
        default = default_of(SRPrepareSettings, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=default, help=f"{text} (default {default})")
    p.set_defaults(func=cmd_prepare_sr)


def cmd_inspect(args: argparse.Namespace) -> int:
    from talkinghead.data.dataset_format import PreparedDataset
    from talkinghead.data.inspect import contact_sheet, format_summary, summarize

    dataset = PreparedDataset(args.dataset)
    print(format_summary(summarize(dataset)))
    if dataset.records:
        out = args.sheet or (Path(args.dataset) / "contact_sheet.png")
        path = contact_sheet(dataset, out, num_clips=args.clips, frames_per_clip=args.frames, seed=args.seed)
        print(f"contact sheet: {path}")
    return 0


def add_inspect(sub) -> None:
    from talkinghead.data.inspect import contact_sheet

    p = sub.add_parser(
        "inspect",
        help="print a prepared dataset's counts and write a contact sheet PNG",
        description="Summarise a dataset written by `prepare` (clips, frames, identities per split, "
        "failures by reason) and draw a contact sheet: frames with landmark overlays and segmentation.",
    )
    p.add_argument("dataset", type=Path, help="dataset folder written by `talkinghead prepare`")
    p.add_argument("--sheet", type=Path, help="contact sheet PNG path (default DATASET/contact_sheet.png)")
    p.add_argument("--clips", type=int, default=default_of(contact_sheet, "num_clips"), help="clips (rows) on the sheet")
    p.add_argument("--frames", type=int, default=default_of(contact_sheet, "frames_per_clip"),
                   help="frames per clip on the sheet")
    p.add_argument("--seed", type=int, default=default_of(contact_sheet, "seed"), help="seed for choosing clips and frames")
    p.set_defaults(func=cmd_inspect)
