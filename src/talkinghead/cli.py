"""The ``talkinghead`` command line: one sub-command per job.

Each sub-command parses its options here and calls library code; nothing here is
needed to use the library from Python.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path

from talkinghead import __version__
from talkinghead.config.base import default_of
from talkinghead.utils.bundled import DEFAULT_MODEL, bundled_model_names, resolve_model

# --checkpoint's help, shared by every command that reads a trained model.
_MODEL_HELP = "release folder, checkpoint file or run folder, or a bundled model by name (" + ", ".join(bundled_model_names()) + ")"


def _overrides_help() -> str:
    return "config overrides as dotted key=value pairs, e.g. crop.scale=2.0 size=224"


def _preflight(numbers=(), *, folder: tuple[Path, str] | None = None, media: tuple[Path, str] | None = None) -> None:
    """What every command checks before loading a model (see :mod:`talkinghead.utils.preflight`).

    Args:
        numbers: numeric option checks (``at_least``/``above`` of utils.preflight).
        folder: ``(path, option)`` of an output that must be a folder, checked writable too.
        media: ``(path, option)`` of a video-or-PNG-folder output (its suffix must be supported).
    """
    from talkinghead.utils.output_guard import check_writable
    from talkinghead.utils.preflight import check_folder_output, check_numbers

    check_numbers(numbers)
    if folder is not None:
        path, option = folder
        check_folder_output(path, option)
        check_writable(path, option=option, is_folder=True)
    if media is not None:
        from talkinghead.inference.writers import check_output_path

        check_output_path(*media)


# ----------------------------------------------------------------------------- print-config


def cmd_print_config(args: argparse.Namespace) -> int:
    from talkinghead.config import dump_yaml, load_config

    config = load_config(args.config, args.overrides, kind=args.kind)
    sys.stdout.write(dump_yaml(config))
    return 0


def add_print_config(sub) -> None:
    p = sub.add_parser(
        "print-config",
        help="print a fully resolved config (file + base chain + overrides)",
        description="Load a YAML config (following its 'base:' chain), apply key=value overrides, "
        "check every value against the schema and print the result as YAML.",
    )
    p.add_argument("config", type=Path, nargs="?", help="YAML config file (omit with --kind to see defaults)")
    p.add_argument("overrides", nargs="*", help=_overrides_help())
    p.add_argument("--kind", help="schema to use when no file is given (e.g. prepare)")
    p.set_defaults(func=cmd_print_config)


# ----------------------------------------------------------------------------- prepare


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


def cmd_prepare(args: argparse.Namespace) -> int:
    from talkinghead.config import load_config
    from talkinghead.data.prepare import RunOptions, prepare_dataset

    from talkinghead.utils.preflight import above, at_least

    _preflight([at_least("--workers", args.workers, 1), at_least("--size", args.size, 1),
                above("--crop-scale", args.crop_scale, 0), at_least("--face-index", args.face_index, 0),
                at_least("--min-face-size", args.min_face_size, 0), at_least("--min-frames", args.min_frames, 1),
                at_least("--test-fraction", args.test_fraction, 0)],
               folder=(args.output, "OUTPUT"))
    flags = {key: getattr(args, flag) for flag, key in _PREPARE_FLAGS.items() if getattr(args, flag) is not None}
    config = load_config(args.config, args.overrides, kind="prepare", values=flags)
    options = RunOptions(
        workers=args.workers,
        shard=args.shard,
        strict=args.strict,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
    )
    summary = prepare_dataset(args.input, args.output, config, options)
    print(summary.format())
    code = summary.exit_code(args.strict)
    if code and summary.dataset_clips == 0:
        print("error: no usable clip was produced; see the failures above", file=sys.stderr)
    return code


def add_prepare(sub) -> None:
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
    p.add_argument("overrides", nargs="*", help=_overrides_help())
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
    g.add_argument("--crop-scale", type=float, help="crop side relative to the landmark box (default 1.8)")
    g.add_argument("--crop-offset", type=float, help="upward shift of the crop centre, fraction of its side")
    g.add_argument("--size", type=int, help="output frame side in pixels (default 256; LSR trains at 224)")
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
    r.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    r.add_argument("--shard", type=_shard, metavar="I/N", help="process only slice I of N (0-based), for array jobs")
    r.add_argument("--strict", action="store_true", help="exit non-zero when any clip failed or lost frames")
    r.add_argument("--retry-failed", action="store_true", help="process again clips that failed in an earlier run")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)


# ----------------------------------------------------------------------------- inspect


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
    p = sub.add_parser(
        "inspect",
        help="print a prepared dataset's counts and write a contact sheet PNG",
        description="Summarise a dataset written by `prepare` (clips, frames, identities per split, "
        "failures by reason) and draw a contact sheet: frames with landmark overlays and segmentation.",
    )
    p.add_argument("dataset", type=Path, help="dataset folder written by `talkinghead prepare`")
    p.add_argument("--sheet", type=Path, help="contact sheet PNG path (default DATASET/contact_sheet.png)")
    p.add_argument("--clips", type=int, default=8, help="clips (rows) on the sheet")
    p.add_argument("--frames", type=int, default=4, help="frames per clip on the sheet")
    p.add_argument("--seed", type=int, default=0, help="seed for choosing clips and frames")
    p.set_defaults(func=cmd_inspect)


# ----------------------------------------------------------------------------- weights


def cmd_weights(args: argparse.Namespace) -> int:
    from talkinghead import weights

    if args.action == "list":
        print(f"weights folder: {weights.registry.weights_dir()}  (set TALKINGHEAD_HOME to move it)")
        for name, asset in weights.ASSETS.items():
            present = weights.is_available(name)
            state = "present" if present else "missing"
            if present:
                rec = weights.registry.recorded_checksum(name)
                path = weights.registry.installed_path(name)
                if path == weights.registry.bundled_copy(name):
                    state += " (bundled with talkinghead)"
                elif path != weights.asset_path(name):
                    state += f" (the copy in {asset.package_file[0]})"
                else:
                    state += f" ({rec['status']})" if rec else " (not installed by `weights add`: unchecked)"
            print(f"  {name:<14} {state:<22} {asset.filename}")
            print(f"  {'':<14} {asset.description}; used for {asset.used_for}")
        return 0
    if args.action == "path":
        print(weights.registry.installed_path(args.name) or weights.asset_path(args.name))
        return 0
    if args.action == "download":
        path, status = weights.download(args.name, progress=not args.no_progress)
        print(f"installed {args.name} at {path} ({status})")
        return 0
    if args.action == "add":
        from talkinghead.evaluation.asset_checks import asset_loader

        path, status = weights.add(args.name, args.file, force=args.force, check=asset_loader(args.name))
        note = "" if status == "verified" else " (no published checksum: sha256 recorded, not verified)"
        print(f"installed {args.name} at {path}{note}")
        return 0
    raise AssertionError(args.action)


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


# ----------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    import talkinghead.training  # noqa: F401  (registers every method's recipe and config)
    from talkinghead.config import dump_yaml, load_config
    from talkinghead.training.distributed import DistributedContext
    from talkinghead.training.recipe import get_recipe
    from talkinghead.training.run import train, validate
    from talkinghead.training.trainer import TrainingInterrupted

    from talkinghead.training.standalone import release_dir, standalone_trainer
    from talkinghead.utils.preflight import at_least

    _preflight([at_least("--max-steps", args.max_steps, 1)],
               folder=None if args.dry_run else (args.run_dir, "--run-dir"))
    config = load_config(args.config, args.overrides)
    program = standalone_trainer(config)  # a config kind trained outside the method recipes (kind: upscale)
    if program is not None:
        if args.dry_run:
            sys.stdout.write(dump_yaml(config))
            print("# dry run: " + program.validate(config))
            return 0
        try:
            program.train(config, args.run_dir, resume=args.resume, max_steps=args.max_steps)
        except TrainingInterrupted as stop:
            print(str(stop), file=sys.stderr)
            return 128 + stop.by_signal if stop.by_signal is not None else 0
        print(f"run folder: {args.run_dir} (release weights in {release_dir(args.run_dir)})")
        return 0
    get_recipe(getattr(config, "method", None), where=str(args.config))  # a training config of a known method
    if args.dry_run:
        sys.stdout.write(dump_yaml(config))
        lengths = validate(config, DistributedContext())
        print("# dry run: config and data are valid; steps per stage: " + ", ".join(f"{k} {v}" for k, v in lengths.items()))
        return 0
    try:
        results = train(config, args.run_dir, resume=args.resume, max_steps=args.max_steps)
    except TrainingInterrupted as stop:
        print(str(stop), file=sys.stderr)
        return 128 + stop.by_signal if stop.by_signal is not None else 0  # 130 SIGINT, 143 SIGTERM
    for stage, numbers in results.items():
        shown = ", ".join(f"{k} {v:.4g}" for k, v in numbers.items() if k.startswith(("eval/", "loss/")))
        print(f"{stage}: {shown}")
    print(f"run folder: {args.run_dir} (release weights in {Path(args.run_dir) / 'release'})")
    return 0


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model of any method (the config names it; LSR: layout pre-training, then the full pipeline)",
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


# ----------------------------------------------------------------------------- finetune


def cmd_finetune(args: argparse.Namespace) -> int:
    from talkinghead.models.pretrained import load_pretrained
    from talkinghead.training.finetune import finetune, finetune_config
    from talkinghead.utils.preflight import at_least

    _preflight([at_least("--frames-per-video", args.frames_per_video, 1)], folder=(args.output, "--output"))
    pretrained = load_pretrained(args.checkpoint)
    config = finetune_config(pretrained.method, args.config, args.overrides)
    result = finetune(
        pretrained, args.images, args.output, config,
        frames_per_video=args.frames_per_video, overwrite=args.overwrite,
    )
    print(result.format())
    return 0


def add_finetune(sub) -> None:
    from talkinghead.training.finetune import FRAMES_PER_VIDEO

    p = sub.add_parser(
        "finetune",
        help="personalise a trained model to one person from a few images (LSR §3.5, FSTH, MetaPortrait)",
        description="Prepare the person's images (or frames of a video) with the training detector and crop, "
        "fine-tune the model on them with its method's recipe (LSR: latents computed once, then the layout "
        "generator, image generator and discriminator are tuned), and write a release folder with the tuned "
        "weights and the person's state.",
    )
    p.add_argument("--checkpoint", type=resolve_model, default=DEFAULT_MODEL,
                   help=_MODEL_HELP + f" (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--images", required=True, nargs="+", help="images, videos or folders of the person")
    p.add_argument("--output", required=True, type=Path, help="release folder to write")
    p.add_argument("--config", type=Path, help="fine-tuning config YAML of the model's method "
                   "(LSR: kind lsr_finetune, see configs/lsr/finetune.yaml); the method's defaults otherwise")
    p.add_argument(
        "--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
        help="config overrides, e.g. --set steps=200 lr=5e-5",
    )
    p.add_argument("--frames-per-video", type=int, default=FRAMES_PER_VIDEO,
                   help=f"frames sampled from each video (default {FRAMES_PER_VIDEO})")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=cmd_finetune)


# ----------------------------------------------------------------------------- animate


def _animate_options(args: argparse.Namespace):
    from talkinghead.inference.options import AnimateOptions

    return AnimateOptions(
        motion=args.motion, smooth=args.smooth, expression_scale=args.expression_scale,
        retarget=tuple(args.retarget or ()), stabilize=args.stabilize, batch_size=args.batch_size,
        paste_back=getattr(args, "paste_back", False), face_index=args.face_index, precision=args.precision,
        overlap=args.overlap,
    )


def _add_motion_arguments(p) -> None:
    from talkinghead.inference.animate_job import AnimateJob
    from talkinghead.inference.options import AnimateOptions

    option = AnimateOptions()
    p.add_argument(
        "--motion", choices=("relative", "absolute"), default=option.motion,
        help="relative (default): apply the driver's motion from its neutral frame to the source's own landmarks, "
        "scaled by face size, so the source keeps its face shape; absolute: use the driver's landmarks as they are "
        "(self-reenactment)",
    )
    p.add_argument("--smooth", type=float, default=option.smooth, metavar="SIGMA",
                   help="smooth the driving landmark track with a Gaussian of SIGMA frames against jitter (0 = off)")
    p.add_argument("--expression-scale", type=float, default=option.expression_scale, metavar="G",
                   help=f"gain on the driver's expression change in relative mode (default {option.expression_scale:g}; "
                   "0 = head pose only, >1 exaggerates)")
    p.add_argument("--retarget", nargs="+", choices=("eyes", "lips"), default=option.retarget, metavar="REGION",
                   help="eyes and/or lips: their opening follows the driver's change from a neutral rest "
                   "(mouth closed, eyes open), even when the source photo's mouth is open or eyes closed")
    p.add_argument("--no-stabilize", dest="stabilize", action="store_false",
                   help="do not steady the driver's head pose (default: an adaptive low-pass on head pose only, "
                   "no delay, against detector jitter of a still head)")
    p.add_argument("--batch-size", type=int, default=option.batch_size,
                   help=f"frames synthesised per network call (default {option.batch_size})")
    p.add_argument("--face-index", type=int, default=option.face_index,
                   help="which face of the driving video to follow when several are visible (0 = the main face)")
    p.add_argument("--device", default=default_of(AnimateJob, "device"), help="auto (GPU when available), cpu or cuda")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=option.precision,
                   help="synthesis precision; bf16/fp16 need a GPU")
    p.add_argument("--max-frames", type=int, help="animate only the first N driving frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--runtime", choices=("eager", "compile", "onnx", "auto"), default=default_of(AnimateJob, "runtime"),
                   help="how synthesis runs: eager PyTorch, torch.compile, onnxruntime, or auto (the fastest, measured "
                   "once); builds are cached in $TALKINGHEAD_HOME/runtime and checked against eager (max |diff| <= 1e-3)")
    p.add_argument("--threads", type=int, help="CPU threads of this process (torch and onnxruntime; default: all cores)")
    p.add_argument("--no-overlap", dest="overlap", action="store_false",
                   help="run decoding, landmarks, synthesis and encoding one after another (default: in parallel threads)")


def _motion_numbers(args: argparse.Namespace) -> list:
    """Checks of the numeric options `animate` and `demo` share."""
    from talkinghead.utils.preflight import at_least

    return [at_least("--smooth", args.smooth, 0), at_least("--batch-size", args.batch_size, 1),
            at_least("--face-index", args.face_index, 0), at_least("--max-frames", args.max_frames, 1),
            at_least("--threads", args.threads, 1), at_least("--finetune-steps", args.finetune_steps, 0)]


def cmd_animate(args: argparse.Namespace) -> int:
    from talkinghead.inference.animate_job import AnimateJob, OutputSpec, run_animate
    from talkinghead.utils.preflight import above, at_least

    _preflight([*_motion_numbers(args), at_least("--output-size", args.output_size, 1), above("--fps", args.fps, 0),
                at_least("--source-face-index", args.source_face_index, 0),
                at_least("--neutral-frame", args.neutral_frame, 0)],
               media=(args.output, "--output"))

    job = AnimateJob(
        checkpoint=args.checkpoint,
        driving=args.driving,
        outputs=[OutputSpec(args.output, "side_by_side" if args.side_by_side else "result")],
        sources=list(args.source or []),
        load_source=args.load_source,
        save_source=args.save_source,
        finetune_steps=args.finetune_steps,
        source_face_index=args.source_face_index,
        neutral_frame=args.neutral_frame,
        max_frames=args.max_frames,
        output_size=args.output_size,
        fps=args.fps,
        overwrite=args.overwrite,
        device=args.device,
        progress=not args.no_progress,
        upscale=args.upscale or args.upscale_model is not None,
        upscale_model=args.upscale_model,
        runtime=args.runtime,
        threads=args.threads,
    )
    if args.live:
        from talkinghead.inference.live_job import run_live

        print(run_live(job, _animate_options(args)).format())
        return 0
    summary = run_animate(job, _animate_options(args))
    print(summary.format())
    if summary.source_file:
        print(f"source encoding saved to {summary.source_file} (reuse it with --load-source)")
    return 0


def add_animate(sub) -> None:
    from talkinghead.inference.animate_job import DEFAULT_OUTPUT_SIZE, AnimateJob

    p = sub.add_parser(
        "animate",
        help="animate a person's photo(s) with a driving video",
        description="Render the person in --source making the head motion and expressions of the face in "
        "--driving. Writes an H.264 mp4 (keeping the driving video's frame rate and audio) or, for a path "
        "without a suffix, a folder of PNG frames. Outputs are written under a temporary name and renamed "
        "only when complete.",
    )
    p.add_argument("--checkpoint", type=resolve_model, default=DEFAULT_MODEL,
                   help=_MODEL_HELP + f" (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--source", nargs="+", type=Path,
                   help="one or more photos of the person (latents are averaged; the first is the reference)")
    p.add_argument("--driving", required=True, type=Path, help="driving video, folder of frames, or one image")
    p.add_argument("--output", required=True, type=Path, help="output .mp4/.mov/.mkv, or a folder for PNG frames")
    p.add_argument("--save-source", type=Path, metavar="FILE",
                   help="save the encoded source (latents, landmarks, photo) to reuse with --load-source")
    p.add_argument("--load-source", type=Path, metavar="FILE", help="use a source saved earlier with --save-source")
    p.add_argument("--finetune-steps", type=int, default=default_of(AnimateJob, "finetune_steps"), metavar="N",
                   help="fine-tune the model on the source photos for N steps first (LSR §3.5; 0 = off)")
    p.add_argument("--source-face-index", type=int, default=default_of(AnimateJob, "source_face_index"), metavar="I",
                   help="which face of the source photos to animate when several are visible (0 = the main face)")
    p.add_argument("--neutral-frame", type=int, default=default_of(AnimateJob, "neutral_frame"), metavar="I",
                   help="driving frame that relative motion is measured from (default 0: the first)")
    p.add_argument("--paste-back", action="store_true",
                   help="blend the synthesised face back into the full source photo (keeps its framing)")
    p.add_argument("--side-by-side", action="store_true", help="write source | driving | result")
    p.add_argument("--output-size", type=int, metavar="PX",
                   help=f"side of the result in pixels (default {DEFAULT_OUTPUT_SIZE}; with --upscale twice the "
                        "model's); MetaPortrait warps the photo at this size with its networks at the model's size")
    fps = default_of(AnimateJob, "fps")
    p.add_argument("--fps", type=float, default=fps, help=f"frame rate for a folder of driving images (default {fps:g})")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.add_argument("--upscale", action="store_true",
                   help="double the result's resolution with the temporal super-resolution model (streaming)")
    p.add_argument("--upscale-model", type=Path, metavar="PATH",
                   help="super-resolution release folder for --upscale (default: the bundled models/upscale)")
    p.add_argument("--live", action="store_true",
                   help="play --driving in real time as a live stream: animate the newest frame, drop late ones "
                   "(bounded queue), write the newest result at every input tick; reports latency and frames/s")
    _add_motion_arguments(p)
    p.set_defaults(func=cmd_animate)


# ----------------------------------------------------------------------------- upscale


def cmd_upscale(args: argparse.Namespace) -> int:
    from talkinghead.inference.upscale import upscale_video
    from talkinghead.utils.preflight import above, at_least

    _preflight([at_least("--batch-size", args.batch_size, 1), above("--fps", args.fps, 0)],
               media=(args.output, "OUTPUT"))
    summary = upscale_video(args.input, args.output, model=args.model, device=args.device,
                            batch_size=args.batch_size, fps=args.fps, overwrite=args.overwrite,
                            progress=not args.no_progress)
    print(summary.format())
    return 0


def add_upscale(sub) -> None:
    import inspect

    from talkinghead.inference.upscale import upscale_video

    defaults = {name: param.default for name, param in inspect.signature(upscale_video).parameters.items()}
    p = sub.add_parser(
        "upscale",
        help="double a video's resolution with the temporal super-resolution model (e.g. 256 -> 512 px)",
        description="Upscale every frame of INPUT to twice its width and height with a super-resolution network "
        "over a window of adjacent frames (MetaPortrait §3.3), keeping every frame, the frame rate and the audio. "
        "Writes an H.264 mp4 (or PNG frames for a path without suffix) under a temporary name, renamed when complete.",
    )
    p.add_argument("input", type=Path, help="video, folder of frames, or image to upscale")
    p.add_argument("output", type=Path, help="output .mp4/.mov/.mkv, or a folder for PNG frames")
    p.add_argument("--model", type=Path, help="super-resolution release folder (default: the bundled models/upscale)")
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu or cuda")
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"],
                   help=f"frames per network call (default {defaults['batch_size']})")
    p.add_argument("--fps", type=float, default=defaults["fps"],
                   help=f"frame rate for a folder of frames (default {defaults['fps']:g})")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_upscale)


# ----------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from talkinghead.inference.demo import run_demo

    _preflight(_motion_numbers(args), folder=(args.output, "--output"))
    result = run_demo(
        args.output, checkpoint=args.checkpoint, sources=args.source, driving=args.driving,
        options=_animate_options(args), device=args.device, max_frames=args.max_frames,
        finetune_steps=args.finetune_steps, progress=not args.no_progress, runtime=args.runtime, threads=args.threads,
    )
    print(result.format())
    return 0


def add_demo(sub) -> None:
    from talkinghead.inference.demo import DEMO_FINETUNE_STEPS, DEMO_OUTPUT

    p = sub.add_parser(
        "demo",
        help="animate a bundled portrait with a bundled driving video (offline, no arguments needed)",
        description="Run the bundled MetaPortrait model (models/demo) on a bundled portrait and driving video and "
        "write result.mp4, side_by_side.mp4 and strip.png to OUTPUT (default demo_out). The demo replaces its own "
        "output files on every run.",
    )
    p.add_argument("--output", type=Path, default=Path(DEMO_OUTPUT), help=f"output folder (default {DEMO_OUTPUT})")
    p.add_argument("--checkpoint", type=resolve_model, help=_MODEL_HELP + f" (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--source", nargs="+", type=Path, help="your own photo(s) of a person")
    p.add_argument("--driving", type=Path, help="your own driving video")
    p.add_argument("--finetune-steps", type=int, default=DEMO_FINETUNE_STEPS, metavar="N",
                   help=f"fine-tune the model on the source photo first (default {DEMO_FINETUNE_STEPS}; 0 = off)")
    _add_motion_arguments(p)
    p.set_defaults(func=cmd_demo)


# ----------------------------------------------------------------------------- app


def cmd_app(args: argparse.Namespace) -> int:
    from talkinghead.app.server import serve

    serve(host=args.host, port=args.port, checkpoints=args.checkpoint, device=args.device,
          max_upload_mb=args.max_upload_mb)
    return 0


def add_app(sub) -> None:
    from talkinghead.app.jobs import DEFAULT_MAX_UPLOAD_MB
    from talkinghead.app.server import DEFAULT_HOST, DEFAULT_PORT

    p = sub.add_parser(
        "app",
        help="a web page on this machine for animating photos (needs talkinghead[app])",
        description="Serve a Gradio page: source photo(s) and a driving video (uploads or the bundled examples), "
        "model, motion, smoothing, paste-back and fine-tuning; one job at a time, offline. Uploads and results "
        "live in a temporary folder removed when the server stops (Ctrl-C).",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--checkpoint", type=resolve_model, action="append", default=[],
                   help="another model to offer besides the bundled one (repeatable): " + _MODEL_HELP)
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu or cuda")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest upload accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB})")
    p.set_defaults(func=cmd_app)


# ----------------------------------------------------------------------------- evaluate


def cmd_evaluate(args: argparse.Namespace) -> int:
    from talkinghead.errors import InvalidInputError
    from talkinghead.evaluation.compare import load_results, merge_results
    from talkinghead.evaluation.write_reports import write_reports
    from talkinghead.utils.preflight import above, at_least

    _preflight([*(at_least("--k", k, 1) for k in args.k), at_least("--finetune-steps", args.finetune_steps, 0),
                above("--holdout-fraction", args.holdout_fraction, 0), at_least("--max-videos", args.max_videos, 1),
                at_least("--targets-per-video", args.targets_per_video, 0),
                at_least("--batch-size", args.batch_size, 1), at_least("--workers", args.workers, 0)],
               folder=(args.output, "--output"))
    if args.compare:
        if args.target:
            raise InvalidInputError("--compare takes results.json files only; leave out CHECKPOINT and DATASET")
        from talkinghead.evaluation.coverage import check_report_folder

        check_report_folder(args.output, {"compared results": args.compare})
        results, warnings = merge_results([load_results(p) for p in args.compare])
        for warning in warnings:
            logging.warning("%s", warning)
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
            workers=args.workers, output_size=args.output_size,
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
    from talkinghead.evaluation.options import EvaluateOptions

    option = EvaluateOptions()

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
    p.add_argument("--k", nargs="+", type=int, default=option.ks,
                   help=f"numbers of input shots (default {' '.join(map(str, option.ks))})")
    p.add_argument("--finetune-steps", type=int, default=option.finetune_steps, metavar="N",
                   help="also evaluate models fine-tuned N steps on the shots (LSR's fine-tuned columns)")
    p.add_argument("--cross", action="store_true",
                   help="cross-identity reenactment: drive each person with another identity's hold-out frames")
    p.add_argument("--split", default=option.split,
                   help=f"dataset split to evaluate (default {option.split}; '' = every clip)")
    p.add_argument("--holdout-fraction", type=float, default=option.holdout_fraction,
                   help=f"hold-out tail of clips without input/hold-out roles (default {option.holdout_fraction})")
    p.add_argument("--max-videos", type=int, help="evaluate only the first N videos")
    p.add_argument("--targets-per-video", type=int, default=option.targets_per_video,
                   help=f"hold-out frames per video (0 = all; default {option.targets_per_video})")
    p.add_argument("--metrics", nargs="+", default=option.metrics, help="metrics to compute")
    p.add_argument("--id-network", choices=("dlib-resnet", "dlib", "vggface", "arcface"), default=option.id_network,
                   help="identity network of ID-SIM (dlib-resnet: dlib's ResNet in PyTorch, batched, offline; dlib: "
                   "the same network in dlib's C++; LSR used VGGFace, FSTH/LPD ArcFace)")
    p.add_argument("--landmarks", default=option.landmark_backend,
                   help=f"landmark backend of NMKE (default {option.landmark_backend})")
    p.add_argument("--seed", type=int, default=option.seed, help="seed of the shot selection")
    p.add_argument("--device", default=option.device, help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=option.batch_size, help="frames synthesised per call")
    p.add_argument("--workers", type=int, default=option.workers, help="threads loading upcoming videos")
    p.add_argument("--output-size", type=int, metavar="PX",
                   help="compare frames at this size (default: the model's); MetaPortrait warps the shots at it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)


# ----------------------------------------------------------------------------- export


def cmd_export_release(args: argparse.Namespace) -> int:
    import torch

    from talkinghead.config import to_dict
    from talkinghead.models.pretrained import load_pretrained
    from talkinghead.utils.output_guard import (
        check_output_location, check_replaceable_folder, check_writable, output_errors,
    )
    from talkinghead.weights.release import save_release

    _preflight(folder=(args.output, "--output"))
    check_output_location(args.output, {"checkpoint": args.checkpoint})
    if args.overwrite:
        check_replaceable_folder(args.output, "export release")
    check_writable(args.output)
    pretrained = load_pretrained(args.checkpoint, use_ema=not args.raw)
    info = {"method": pretrained.method, "model": to_dict(pretrained.config), "source": str(pretrained.source),
            **pretrained.info}
    states = pretrained.state_dicts
    if args.dtype != "float32":
        dtype = getattr(torch, args.dtype)
        states = {
            name: {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
            for name, state in states.items()
        }
        info["stored_dtype"] = args.dtype  # loading converts back to the networks' float32
    if args.generators_only:
        states = {name: state for name, state in states.items() if name in pretrained.spec.inference_networks}
    with output_errors(args.output):
        out = save_release(args.output, info, states, overwrite=args.overwrite, command="export release")
    print(f"release written to {out}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from talkinghead.inference.onnx_export import export_onnx
    from talkinghead.inference.pipeline import AnimationPipeline

    from talkinghead.utils.output_guard import check_output_location, output_errors
    from talkinghead.utils.preflight import above, at_least

    _preflight([at_least("--opset", args.opset, 7), above("--tolerance", args.tolerance, 0)],
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
    from talkinghead.inference.onnx_export import DEFAULT_OPSET, DEFAULT_TOLERANCE

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
        "--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
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
        help="the per-frame synthesis networks (LSR: G_l + G_s) as ONNX, checked with onnxruntime",
        description="Export the model's per-frame synthesis, with the landmark image and the person state "
        "(LSR: the source latents) as inputs, to OUTPUT/synthesis.onnx, run it in onnxruntime and report the "
        "largest difference from PyTorch.",
    )
    o.add_argument("--checkpoint", required=True, type=resolve_model, help=_MODEL_HELP)
    o.add_argument("--output", required=True, type=Path, help="folder to write")
    o.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    o.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"largest accepted difference from PyTorch (default {DEFAULT_TOLERANCE:g})")
    o.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    o.set_defaults(func=cmd_export_onnx)


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkinghead",
        description="Few-shot neural talking-head synthesis: prepare data, train, fine-tune, animate, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"talkinghead {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_prepare(sub)
    add_inspect(sub)
    add_train(sub)
    add_finetune(sub)
    add_animate(sub)
    add_upscale(sub)
    add_demo(sub)
    add_app(sub)
    add_evaluate(sub)
    add_export(sub)
    add_weights(sub)
    add_print_config(sub)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every temporary output is cleaned up on the way out."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


def _raise_interrupt(signum, frame) -> None:
    """The first Ctrl-C stops the command; more while it cleans up do not stop the clean-up."""
    import signal

    signal.signal(signal.SIGINT, _cleaning_up)
    raise KeyboardInterrupt()


def _cleaning_up(signum, frame) -> None:
    print("interrupted; removing temporary files, a moment", file=sys.stderr, flush=True)


# What an interrupted command leaves behind, said as it is (the rest: nothing is written half).
_INTERRUPTED = {
    "prepare": "finished clips are kept; run the same command again to resume",
    "evaluate": "finished videos are cached in the --output folder; run the same command again to resume",
    "train": "checkpoints already saved in the run folder are kept; continue with --resume",
    "app": "the app stopped and removed its temporary folder (uploads and results)",
    "finetune": "nothing was written (outputs appear only when complete); run the command again",
    "animate": "nothing was kept and the output is untouched (the partial result was removed); "
               "run the command again to start over",
    "demo": "nothing was kept and the output folder is untouched (the partial result was removed); "
            "run the command again to start over",
}


def _interrupted_message(command: str | None) -> str:
    return "interrupted; " + _INTERRUPTED.get(
        command, "nothing was written (outputs appear only when complete); run the command again"
    )


# errno -> what to do, for the I/O errors a user can act on (the rest are bugs and keep a traceback)
_OS_ERROR_FIXES = {
    "ENOSPC": "the disk is full: free some space there or choose an output on another disk, then run the "
              "command again",
    "EDQUOT": "the disk quota is used up: free some space or choose an output elsewhere, then run the command again",
    "EROFS": "that disk is mounted read-only: choose an output on a writable disk",
    "EACCES": "this user may not use that path: choose one you can read and write, or fix its permissions",
    "EPERM": "this user may not use that path: choose one you can read and write, or fix its permissions",
    "EIO": "the disk reported an input/output error: check the disk, or choose an output on another one",
}


def _os_error_line(err: OSError) -> str | None:
    """One line for an I/O error a user can act on (path, reason, fix), or None for any other."""
    import errno

    name = errno.errorcode.get(err.errno or -1)
    if name not in _OS_ERROR_FIXES:
        return None
    path = err.filename if err.filename is not None else "writing an output"
    return f"error: {path}: {err.strerror or os.strerror(err.errno)}; {_OS_ERROR_FIXES[name]}"


def _disk_error(err: BaseException) -> OSError | None:
    """The I/O error behind ``err`` (itself or a cause), also when a library reports it in words only.

    torch.save raises ``RuntimeError("... PytorchStreamWriter failed writing file ...: file write
    failed")`` on a full disk, safetensors ``SafetensorError("... No space left on device (os error
    28)")``: both are read back into the ``OSError`` they stand for.
    """
    import errno
    import re

    for _ in range(5):
        if err is None:
            return None
        if isinstance(err, OSError) and _os_error_line(err):
            return err
        text = str(err)
        number = re.search(r"\(os error (\d+)\)", text)
        if number:
            code = int(number.group(1))
        elif "No space left on device" in text or "file write failed" in text:
            code = errno.ENOSPC
        else:
            code = None
        if code is not None:
            disk = OSError(code, os.strerror(code))
            if _os_error_line(disk):
                return disk
        err = err.__cause__ or err.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``talkinghead`` console script.

    Every way a command ends is decided here: its exit code (0), a user error as one line
    (exit 2), an I/O error a user can act on (full or read-only disk, no permission) as one
    line with the path and the fix (exit 2), and Ctrl-C / SIGTERM at any moment, also while
    the parser imports the libraries, as one line saying what was kept (exit 130 / 143).
    Temporaries are removed on the way out by the writers' own clean-up. When run as the
    program (``argv`` None) an interrupted process ends without the interpreter's shutdown,
    where native threads (mediapipe's) could abort it.
    """
    import signal

    command = None
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated)}  # clean up like Ctrl-C
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job (`cmd &`) keeps ignoring it
            handlers[signal.SIGINT] = signal.signal(signal.SIGINT, _raise_interrupt)
    code = 0
    try:
        try:
            parser = build_parser()  # imports torch and the libraries: seconds
            args = parser.parse_args(argv)
            command = args.command
            if args.verbose:
                os.environ.setdefault("TALKINGHEAD_VERBOSE", "1")  # shows mediapipe's start-up log lines
            logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                                format="%(levelname)s: %(message)s")
            from talkinghead.errors import TalkingHeadError

            try:
                return int(args.func(args) or 0)
            except TalkingHeadError as err:
                if args.verbose:
                    raise
                print(f"error: {err}", file=sys.stderr)
                return 2
            except Exception as err:
                disk = _disk_error(err)
                if disk is None or args.verbose:
                    raise  # a bug: its traceback
                if disk.filename is None:  # said in words only: the command's output is the path written
                    disk.filename = getattr(args, "output", None) or getattr(args, "run_dir", None)
                print(_os_error_line(disk), file=sys.stderr)
                return 2
        except KeyboardInterrupt as stop:
            code = 143 if isinstance(stop, _Terminated) else 130
            print(_interrupted_message(command), file=sys.stderr)
            if argv is None:  # the program itself: skip shutdown, where native threads may abort
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            return code
    finally:
        for signum, previous in handlers.items():
            # The program's work is done: a Ctrl-C now (while the interpreter shuts down) has
            # nothing left to stop, and must not kill the process with no word after a success.
            signal.signal(signum, signal.SIG_IGN if argv is None and signum == signal.SIGINT else previous)
