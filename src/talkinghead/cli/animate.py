"""Animation commands: ``animate``, ``upscale``, ``demo`` and ``app``."""

from __future__ import annotations

import argparse
from pathlib import Path

from talkinghead.cli.common import MODEL_HELP, preflight
from talkinghead.config.base import default_of
from talkinghead.utils.bundled import DEFAULT_MODEL, resolve_model


def _animate_options(args: argparse.Namespace):
    from talkinghead.inference.options import AnimateOptions

    return AnimateOptions(
        motion=args.motion, smooth=args.smooth, expression_scale=args.expression_scale,
        retarget=tuple(args.retarget or ()), stabilize=args.stabilize, mouth=args.mouth, batch_size=args.batch_size,
        paste_back=getattr(args, "paste_back", False), face_index=args.face_index, precision=args.precision,
        overlap=args.overlap,
    )


def _add_motion_arguments(p) -> None:
    from talkinghead.inference.animate_job import AnimateJob
    from talkinghead.inference.options import AnimateOptions

    def default(name: str):
        return default_of(AnimateOptions, name)

    p.add_argument(
        "--motion", choices=("relative", "absolute"), default=default("motion"),
        help="relative (default): apply the driver's motion from its neutral frame to the source's own landmarks, "
        "scaled by face size, so the source keeps its face shape; absolute: use the driver's landmarks as they are "
        "(self-reenactment)",
    )
    p.add_argument("--smooth", type=float, default=default("smooth"), metavar="SIGMA",
                   help="smooth the driving landmark track with a Gaussian of SIGMA frames against jitter (0 = off)")
    p.add_argument("--expression-scale", type=float, default=default("expression_scale"), metavar="G",
                   help=f"gain on the driver's expression change in relative mode (default {default('expression_scale'):g}; "
                   "0 = head pose only, >1 exaggerates)")
    p.add_argument("--retarget", nargs="+", choices=("eyes", "lips"), default=default("retarget"), metavar="REGION",
                   help="eyes and/or lips: their opening follows the driver's change from a neutral rest "
                   "(mouth closed, eyes open), even when the source photo's mouth is open or eyes closed")
    p.add_argument("--no-stabilize", dest="stabilize", action="store_false",
                   help="do not steady the driver's head pose (default: an adaptive low-pass on head pose only, "
                   "no delay, against detector jitter of a still head)")
    p.add_argument("--no-mouth", dest="mouth", action="store_false",
                   help="do not paint teeth and cavity into an opening mouth (default: the model's mouth generator, "
                   "when it has one, paints them at the output size)")
    p.add_argument("--batch-size", type=int, default=default("batch_size"),
                   help=f"frames synthesised per network call (default {default('batch_size')})")
    p.add_argument("--face-index", type=int, default=default("face_index"),
                   help="which face of the driving video to follow when several are visible (0 = the main face)")
    p.add_argument("--device", default=default_of(AnimateJob, "device"), help="auto (GPU when available), cpu or cuda")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=default("precision"),
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

    preflight([*_motion_numbers(args), at_least("--output-size", args.output_size, 1), above("--fps", args.fps, 0),
               at_least("--source-face-index", args.source_face_index, 0),
               at_least("--neutral-frame", args.neutral_frame, 0)],
              media=(args.output, "--output"))
    job = AnimateJob(
        checkpoint=args.checkpoint, driving=args.driving,
        outputs=[OutputSpec(args.output, "side_by_side" if args.side_by_side else "result")],
        sources=list(args.source or []), load_source=args.load_source, save_source=args.save_source,
        finetune_steps=args.finetune_steps, source_face_index=args.source_face_index,
        neutral_frame=args.neutral_frame, max_frames=args.max_frames, output_size=args.output_size, fps=args.fps,
        overwrite=args.overwrite, device=args.device, progress=not args.no_progress,
        upscale=args.upscale or args.upscale_model is not None, upscale_model=args.upscale_model,
        runtime=args.runtime, threads=args.threads,
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

    def default(name: str):
        return default_of(AnimateJob, name)

    p = sub.add_parser(
        "animate",
        help="animate a person's photo(s) with a driving video",
        description="Render the person in --source making the head motion and expressions of the face in "
        "--driving. Writes an H.264 mp4 (keeping the driving video's frame rate and audio) or, for a path "
        "without a suffix, a folder of PNG frames. Outputs are written under a temporary name and renamed "
        "only when complete.",
    )
    p.add_argument("--checkpoint", type=resolve_model, default=DEFAULT_MODEL,
                   help=MODEL_HELP + f" (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--source", nargs="+", type=Path,
                   help="one or more photos of the person (the model encodes them into one person state; "
                   "the first is the reference)")
    p.add_argument("--driving", required=True, type=Path, help="driving video, folder of frames, or one image")
    p.add_argument("--output", required=True, type=Path, help="output .mp4/.mov/.mkv, or a folder for PNG frames")
    p.add_argument("--save-source", type=Path, metavar="FILE",
                   help="save the encoded source (person state, landmarks, photo) to reuse with --load-source")
    p.add_argument("--load-source", type=Path, metavar="FILE", help="use a source saved earlier with --save-source")
    p.add_argument("--finetune-steps", type=int, default=default("finetune_steps"), metavar="N",
                   help="fine-tune the model on the source photos for N steps first, with its method's "
                   "fine-tuning recipe (0 = off)")
    p.add_argument("--source-face-index", type=int, default=default("source_face_index"), metavar="I",
                   help="which face of the source photos to animate when several are visible (0 = the main face)")
    p.add_argument("--neutral-frame", type=int, default=default("neutral_frame"), metavar="I",
                   help=f"driving frame that relative motion is measured from (default {default('neutral_frame')}: the first)")
    p.add_argument("--paste-back", action="store_true",
                   help="blend the synthesised face back into the full source photo (keeps its framing)")
    p.add_argument("--side-by-side", action="store_true", help="write source | driving | result")
    p.add_argument("--output-size", type=int, metavar="PX",
                   help=f"side of the result in pixels (default {DEFAULT_OUTPUT_SIZE}; with --upscale twice the "
                        "model's); MetaPortrait warps the photo at this size with its networks at the model's size")
    p.add_argument("--fps", type=float, default=default("fps"),
                   help=f"frame rate for a folder of driving images (default {default('fps'):g})")
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


def cmd_upscale(args: argparse.Namespace) -> int:
    from talkinghead.inference.upscale import upscale_video
    from talkinghead.utils.preflight import above, at_least

    preflight([at_least("--batch-size", args.batch_size, 1), above("--fps", args.fps, 0)],
              media=(args.output, "OUTPUT"))
    summary = upscale_video(args.input, args.output, model=args.model, device=args.device,
                            batch_size=args.batch_size, fps=args.fps, overwrite=args.overwrite,
                            progress=not args.no_progress)
    print(summary.format())
    return 0


def add_upscale(sub) -> None:
    from talkinghead.inference.upscale import upscale_video

    def default(name: str):
        return default_of(upscale_video, name)

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
    p.add_argument("--device", default=default("device"), help="auto (GPU when available), cpu or cuda")
    p.add_argument("--batch-size", type=int, default=default("batch_size"),
                   help=f"frames per network call (default {default('batch_size')})")
    p.add_argument("--fps", type=float, default=default("fps"),
                   help=f"frame rate for a folder of frames (default {default('fps'):g})")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_upscale)


def cmd_demo(args: argparse.Namespace) -> int:
    from talkinghead.inference.demo import run_demo

    preflight(_motion_numbers(args), folder=(args.output, "--output"))
    result = run_demo(
        args.output, checkpoint=args.checkpoint, sources=args.source, driving=args.driving,
        options=_animate_options(args), device=args.device, max_frames=args.max_frames,
        finetune_steps=args.finetune_steps, progress=not args.no_progress, runtime=args.runtime, threads=args.threads,
    )
    print(result.format())
    return 0


def add_demo(sub) -> None:
    from talkinghead.inference.demo import run_demo

    output = default_of(run_demo, "output_dir")
    steps = default_of(run_demo, "finetune_steps")
    p = sub.add_parser(
        "demo",
        help="animate a bundled portrait with a bundled driving video (offline, no arguments needed)",
        description=f"Run the bundled model ({DEFAULT_MODEL}) on a bundled portrait and driving video and "
        f"write result.mp4, side_by_side.mp4 and strip.png to OUTPUT (default {output}). The demo replaces its own "
        "output files on every run.",
    )
    p.add_argument("--output", type=Path, default=Path(output), help=f"output folder (default {output})")
    p.add_argument("--checkpoint", type=resolve_model, help=MODEL_HELP + f" (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--source", nargs="+", type=Path, help="your own photo(s) of a person")
    p.add_argument("--driving", type=Path, help="your own driving video")
    p.add_argument("--finetune-steps", type=int, default=steps, metavar="N",
                   help=f"fine-tune the model on the source photo first (default {steps}; 0 = off)")
    _add_motion_arguments(p)
    p.set_defaults(func=cmd_demo)


def cmd_app(args: argparse.Namespace) -> int:
    from talkinghead.app.server import serve

    serve(host=args.host, port=args.port, checkpoints=args.checkpoint, device=args.device,
          max_upload_mb=args.max_upload_mb)
    return 0


def add_app(sub) -> None:
    from talkinghead.app.server import serve

    def default(name: str):
        return default_of(serve, name)

    p = sub.add_parser(
        "app",
        help="a web page on this machine for animating photos (needs talkinghead[app])",
        description="Serve a Gradio page: source photo(s) and a driving video (uploads or the bundled examples), "
        "model, motion, smoothing, paste-back and fine-tuning; one job at a time, offline. Uploads and results "
        "live in a temporary folder removed when the server stops (Ctrl-C).",
    )
    p.add_argument("--host", default=default("host"), help=f"address to listen on (default {default('host')}: this machine only)")
    p.add_argument("--port", type=int, default=default("port"), help=f"port (default {default('port')})")
    p.add_argument("--checkpoint", type=resolve_model, action="append", default=[],
                   help="another model to offer besides the bundled one (repeatable): " + MODEL_HELP)
    p.add_argument("--device", default=default("device"), help="auto (GPU when available), cpu or cuda")
    p.add_argument("--max-upload-mb", type=float, default=default("max_upload_mb"),
                   help=f"largest upload accepted, in MB (default {default('max_upload_mb')})")
    p.set_defaults(func=cmd_app)
