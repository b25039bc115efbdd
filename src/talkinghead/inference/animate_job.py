"""``talkinghead animate``: a model, source photos and a driving video in; a video out.

Everything that can be checked is checked before any compute (outputs that exist, the
driving input, the model); the source is encoded (or fine-tuned on, or loaded); the
driving frames stream through the pipeline into one or more writers, each of which
writes to a temporary name and renames only when complete. Audio is copied from the
driving video and the frame rate kept.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from talkinghead.config.media import DEFAULT_FPS
from talkinghead.data.frame_source import open_frame_source
from talkinghead.data.media_info import VideoReadError, is_video_file, media_warnings
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimatedFrame, AnimationPipeline
from talkinghead.inference.source import SourceEncoding
from talkinghead.inference.stages import BackgroundWriter
from talkinghead.inference.views import FrameView
from talkinghead.errors import InputNotFoundError, InvalidInputError
from talkinghead.inference.driving import DrivingError
from talkinghead.inference.writers import (
    VIDEO_SUFFIXES,
    OutputExistsError,
    check_output_path,
    fit_video_size,
    open_writer,
)
from talkinghead.utils.bundled import resolve_model
from talkinghead.utils.device import torch_threads
from talkinghead.utils.output_guard import (
    check_output_location,
    check_replaceable_folder,
    check_writable,
    output_errors,
)

log = logging.getLogger(__name__)


# Side of the result when --output-size is not given (issue 24: MetaPortrait warps the photo at it).
DEFAULT_OUTPUT_SIZE = 256

@dataclass
class OutputSpec:
    """One file (or PNG folder) to write and what it shows (``result`` or ``side_by_side``)."""

    path: Path
    view: str = "result"


@dataclass
class AnimateJob:
    """What ``talkinghead animate`` was asked to do (paths and run-level choices).

    Args:
        checkpoint: release folder, checkpoint file or run folder.
        driving: driving video, folder of frames, or a single image.
        outputs: what to write.
        sources: source photos (not needed with ``load_source``).
        load_source: a ``--save-source`` file to use instead of encoding ``sources``.
        save_source: where to write the source encoding.
        finetune_steps: subject fine-tuning steps on ``sources`` before animating (0 = off).
        source_face_index: which face of the source photos to animate (0 = the main face).
        neutral_frame: driving frame that relative motion is measured from.
        max_frames: animate only the first N driving frames.
        output_size: side of the result in pixels (None: :data:`DEFAULT_OUTPUT_SIZE`, or with
            ``upscale`` twice the model's size). A method that warps its source (MetaPortrait)
            renders at this size from the photo's own pixels with its networks at the model's
            size; other methods' frames are resized to it.
        fps: frame rate for a folder of driving images (videos keep their own).
        overwrite: replace outputs that exist.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: show a progress bar.
        runtime: how synthesis runs: ``eager``, ``compile``, ``onnx`` or ``auto`` (see
            :mod:`talkinghead.inference.runtime`).
        threads: CPU threads of this process (torch and onnxruntime); None keeps the default.
        command: the CLI command running the job (recorded in a PNG folder's marker file).
        upscale: double the result crop's resolution with the temporal super-resolution
            model, streaming (:mod:`talkinghead.inference.upscale`).
        upscale_model: its release folder (None: the bundled ``models/upscale``).
    """

    checkpoint: Path
    driving: Path
    outputs: list[OutputSpec]
    sources: list[Path] = field(default_factory=list)
    load_source: Path | None = None
    save_source: Path | None = None
    finetune_steps: int = 0
    source_face_index: int = 0
    neutral_frame: int = 0
    max_frames: int | None = None
    output_size: int | None = None
    fps: float = DEFAULT_FPS
    overwrite: bool = False
    device: str = "auto"
    progress: bool = True
    runtime: str = "eager"
    threads: int | None = None
    command: str = "animate"
    upscale: bool = False
    upscale_model: Path | None = None


@dataclass
class AnimateSummary:
    """What a run did."""

    frames: int
    seconds: float
    animation_seconds: float
    outputs: list[Path]
    frames_without_face: int
    stage_seconds: dict[str, float]
    source: SourceEncoding
    source_file: Path | None = None
    runtime: str = "eager"
    model: str = ""  # which model animated, e.g. "demo (MetaPortrait, 128 px)"
    warnings: list[str] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        """Frames per second of the animation itself (model loading and fine-tuning excluded)."""
        return self.frames / self.animation_seconds if self.animation_seconds > 0 else 0.0

    def format(self) -> str:
        setup = self.seconds - self.animation_seconds
        line = (
            f"animated {self.frames} frames in {self.animation_seconds:.1f} s ({self.frames_per_second:.1f} frames/s; "
            f"{self.seconds:.1f} s in all with {setup:.1f} s of loading and source preparation; "
            f"runtime {self.runtime})" + (f" with {self.model}" if self.model else "") + " -> "
            + ", ".join(str(p) for p in self.outputs)
        )
        if self.frames_without_face:
            line += (
                f"; {self.frames_without_face} driving frame(s) showed no face and kept the nearest "
                "frame's landmarks"
            )
        for warning in self.warnings:
            line += f"; warning: {warning}"
        return line


def check_job(job: AnimateJob) -> None:
    """Fail before any compute on inputs and outputs that cannot work (messages name the path)."""
    if not job.outputs:
        raise InvalidInputError("no output was given")
    if job.load_source is None and not job.sources:
        raise InvalidInputError("give the source photos (--source IMG ...) or a saved source (--load-source FILE)")
    if job.load_source is not None and job.sources:
        raise InvalidInputError("give either the source photos (--source) or a saved source (--load-source), not both")
    if job.load_source is not None and job.finetune_steps:
        raise InvalidInputError("--finetune-steps needs the source photos (--source); it cannot start from --load-source")
    if job.finetune_steps < 0:
        raise InvalidInputError(f"--finetune-steps must be >= 0, got {job.finetune_steps}")
    if job.threads is not None and job.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {job.threads}")
    if job.max_frames is not None and job.max_frames < 1:
        raise InvalidInputError(f"--max-frames must be >= 1, got {job.max_frames}")
    for path in [*job.sources, job.driving, resolve_model(job.checkpoint)] + ([job.load_source] if job.load_source else []):
        if not Path(path).exists():
            raise InputNotFoundError(f"{path}: no such file or folder")
    targets = [(o.path, "--output") for o in job.outputs] + ([(job.save_source, "--save-source")] if job.save_source else [])
    inputs = {"checkpoint": job.checkpoint, "source photo": job.sources, "driving input": job.driving,
              "saved source": job.load_source}
    for spec in job.outputs:
        check_output_path(spec.path)
    for path, option in targets:
        check_output_location(path, inputs, option=option)
        if not job.overwrite and Path(path).exists():
            raise OutputExistsError(path)
        if job.overwrite and option == "--output" and Path(path).suffix.lower() not in VIDEO_SUFFIXES:
            check_replaceable_folder(path, job.command, option=option)
        check_writable(path, option=option)


def _driving_frames(job: AnimateJob, warnings: list[str]):
    """The driving input's info, frame count to animate, frames and neutral frame.

    Ways the input is not what it claims (ends early, broken timestamps) are logged now and
    appended to ``warnings``; so is a break found only while reading.
    """
    source = open_frame_source(job.driving, fps=job.fps)
    info = source.info
    for warning in media_warnings(info):
        log.warning("%s", warning)
        warnings.append(warning)
    if info.num_frames == 0:
        raise VideoReadError(job.driving, "empty", f"{job.driving}: holds no frames")
    if job.neutral_frame < 0 or job.neutral_frame >= info.num_frames:
        raise InvalidInputError(f"--neutral-frame {job.neutral_frame} is outside the driving input's {info.num_frames} frames")
    total = info.num_frames if job.max_frames is None else min(job.max_frames, info.num_frames)

    def frames():
        try:
            for _, _, image in source.frames():
                yield image
        except VideoReadError as err:
            if err.reason != "truncated":
                raise
            log.warning("%s", err)  # keep the frames before the damage
            warnings.append(str(err))

    neutral = None
    if job.neutral_frame:
        neutral = next(source.frames([job.neutral_frame]))[2]
    return info, total, itertools.islice(frames(), total), neutral


def _pipeline(job: AnimateJob, options: AnimateOptions, stack: contextlib.ExitStack) -> AnimationPipeline:
    if not job.finetune_steps:
        return AnimationPipeline.from_pretrained(job.checkpoint, device=job.device)
    from talkinghead.models.pretrained import load_pretrained
    from talkinghead.training.finetune import finetune, finetune_config

    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="talkinghead-animate-")))
    pretrained = load_pretrained(job.checkpoint)
    config = finetune_config(
        pretrained.method, values={"steps": job.finetune_steps, "perceptual": "auto", "device": job.device}
    )
    result = finetune(pretrained, list(job.sources), work / "finetuned", config)
    print(result.format().replace(str(work / "finetuned"), "a temporary folder (removed at the end)"))
    pipeline = AnimationPipeline.from_pretrained(work / "finetuned", device=job.device)
    pipeline.description = f"{pretrained.describe()} fine-tuned for {job.finetune_steps} steps"
    return pipeline


def run_animate(
    job: AnimateJob,
    options: AnimateOptions | None = None,
    *,
    on_frame: Callable[[AnimatedFrame], None] | None = None,
) -> AnimateSummary:
    """Run one animation job; see :class:`AnimateJob`. ``on_frame`` sees every frame."""
    with torch_threads(job.threads):  # the process's thread count is restored afterwards
        return _run_animate(job, options or AnimateOptions(), on_frame)


def _upscaler(job: AnimateJob, options: AnimateOptions):
    """The streaming super-resolution model of ``--upscale`` (None without it)."""
    if not job.upscale:
        return None
    from talkinghead.inference.upscale import StreamingUpscaler

    if options.paste_back:
        raise InvalidInputError("--upscale doubles the synthesised crop; it cannot be combined with --paste-back")
    return StreamingUpscaler.from_pretrained(job.upscale_model, device=job.device)


def _paste_back_warnings(job: AnimateJob, photo_size: tuple[int, int]) -> list[str]:
    """A warning when a pasted-back video must be written smaller than the source photo."""
    height, width = photo_size
    fitted = fit_video_size(height, width)
    if fitted != (height, width) and any(o.path.suffix.lower() in VIDEO_SUFFIXES for o in job.outputs):
        # the summary line says it; the writer logs it as it starts
        return [f"the source photo is {width}x{height}, more than most players decode in a video; "
                f"the pasted-back video is written at {fitted[1]}x{fitted[0]}"]
    return []


def _run_animate(
    job: AnimateJob, options: AnimateOptions, on_frame: Callable[[AnimatedFrame], None] | None
) -> AnimateSummary:
    check_job(job)
    upscaler = _upscaler(job, options)  # loaded before any compute: a missing model fails at once
    start = time.perf_counter()
    warnings: list[str] = []
    info, total, frames, neutral = _driving_frames(job, warnings)
    fps = info.fps if is_video_file(job.driving) else job.fps
    audio = job.driving if is_video_file(job.driving) and info.has_audio else None
    with contextlib.ExitStack() as stack:
        pipeline = stack.enter_context(_pipeline(job, options, stack))
        if job.load_source is not None:
            pipeline.load_source(job.load_source)
        else:
            pipeline.set_source(job.sources, face_index=job.source_face_index)
        if job.save_source is not None:
            pipeline.save_source(job.save_source)
        if upscaler is None:  # the upscaler doubles the model's own frames
            pipeline.set_output_size(job.output_size or DEFAULT_OUTPUT_SIZE)
        runtime = pipeline.set_runtime(job.runtime, batch_size=options.batch_size).describe()
        size = job.output_size or (pipeline.size * 2 if upscaler else DEFAULT_OUTPUT_SIZE)
        views = [FrameView(o.view, pipeline.source.reference, size, paste_back=options.paste_back)
                 for o in job.outputs]
        if options.paste_back:
            warnings += _paste_back_warnings(job, pipeline.source.reference.photo.shape[:2])
        for spec in job.outputs:
            # A full or read-only disk while writing: one line naming the output. Entered
            # before the writers, so it sees the error after they removed their temporaries.
            stack.enter_context(output_errors(spec.path))
        writers = [
            stack.enter_context(open_writer(o.path, fps, audio_from=audio, overwrite=job.overwrite,
                                            max_duration=total / fps, command=job.command))
            for o in job.outputs
        ]
        if options.overlap:  # H.264 encoding in its own thread, beside synthesis
            writers = [stack.enter_context(BackgroundWriter(w)) for w in writers]
        bar = tqdm(total=total, unit="frame", desc="animate", disable=not job.progress, dynamic_ncols=True)
        stack.callback(bar.close)
        loop_start = time.perf_counter()
        count = 0
        frame: AnimatedFrame
        try:
            animated = pipeline.animate(frames, options, neutral=neutral)
            if upscaler is not None:
                from talkinghead.inference.upscale import upscale_animated

                animated = upscale_animated(animated, upscaler)
            for frame in animated:
                for view, writer in zip(views, writers):
                    writer.write(view(frame))
                if on_frame is not None:
                    on_frame(frame)
                count += 1
                bar.update(1)
                if count % 10 == 0:
                    bar.set_postfix(fps=f"{count / (time.perf_counter() - loop_start):.1f}")
        except DrivingError as err:
            raise DrivingError(f"{job.driving}: {err}") from err
        stats = pipeline.stats
        animation_seconds = time.perf_counter() - loop_start
    return AnimateSummary(
        frames=count,
        seconds=time.perf_counter() - start,
        animation_seconds=animation_seconds,
        outputs=[o.path for o in job.outputs],
        frames_without_face=stats.frames_without_face,
        stage_seconds=dict(stats.seconds),
        source=pipeline.source,
        source_file=job.save_source,
        runtime=runtime,
        model=pipeline.description,
        warnings=warnings,
    )
