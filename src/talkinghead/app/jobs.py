"""What one click of the app's *Animate* button runs, without any web framework.

The page (:mod:`talkinghead.app.page`) collects the inputs and hands them to
:class:`AppJobRunner`, which checks them, runs the same :func:`run_animate` job as
``talkinghead animate`` (with fine-tuning, motion, smoothing and paste-back) into a fresh
job folder, and answers either the written files or one message a person can act on. No
exception reaches the page: user errors become their message, anything else (a bug) is
logged with its traceback on the server and the page says so in one line.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from talkinghead.app.live import LiveSession
from talkinghead.data.video import open_frame_source
from talkinghead.errors import TalkingHeadError
from talkinghead.inference.animate_job import AnimateJob, AnimateSummary, OutputSpec, run_animate
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.utils.bundled import bundled_examples, bundled_model

log = logging.getLogger(__name__)

# Label of the bundled model in the model list.
BUNDLED_MODEL_LABEL = "demo (bundled LSR, 64 px)"
DEFAULT_MAX_UPLOAD_MB = 50
# Job folders kept for the page to serve; older ones are removed when a new job starts.
KEEP_JOBS = 4


class AppInputError(TalkingHeadError, ValueError):
    """An input of the page that cannot be used (the message is shown in the page)."""


@dataclass
class AppRequest:
    """The inputs of one animation, as the page gives them.

    Args:
        sources: uploaded source photos (paths); empty to use ``bundled_source``.
        bundled_source: name of a bundled portrait, used when nothing was uploaded.
        driving: uploaded or recorded driving video (path), or None to use ``bundled_driving``.
        bundled_driving: name of a bundled driving video.
        model: a label of :attr:`AppJobRunner.models`.
        motion: ``relative`` or ``absolute``.
        smooth: Gaussian sigma in frames over the driver's landmark track (0 = off).
        paste_back: blend the face back into the full source photo.
        finetune_steps: subject fine-tuning steps on the photos first (0 = off).
        output_size: height in pixels of the crop views.
        max_frames: animate only the first N driving frames (0 = all).
    """

    sources: list[str] = field(default_factory=list)
    bundled_source: str | None = None
    driving: str | None = None
    bundled_driving: str | None = None
    model: str = BUNDLED_MODEL_LABEL
    motion: str = "relative"
    smooth: float = 0.0
    paste_back: bool = False
    finetune_steps: int = 0
    output_size: int = 256
    max_frames: int = 0


@dataclass
class AppResult:
    """What a job answers: the written videos, or the message of why there are none."""

    result: Path | None = None
    side_by_side: Path | None = None
    summary: AnimateSummary | None = None
    error: str | None = None
    warning: str | None = None  # what the inputs were not (a driving video that ends early, ...)

    @property
    def ok(self) -> bool:
        return self.error is None

    def status(self) -> str:
        """One line for the page."""
        if self.error is not None:
            return f"Could not animate: {self.error}"
        s = self.summary
        line = (f"Animated {s.frames} frames in {s.animation_seconds:.1f} s ({s.frames_per_second:.1f} frames/s; "
                f"{s.seconds:.1f} s in all).")
        if s.frames_without_face:
            line += f" {s.frames_without_face} driving frame(s) showed no face and kept the nearest frame's pose."
        if self.warning:
            line += f" Warning: {self.warning}."
        return line


def _without_folders(message: str, paths: list[Path]) -> str:
    """The message with upload folders cut from file paths (a person knows the file by its name)."""
    for path in sorted(paths, key=lambda p: len(str(p)), reverse=True):
        message = message.replace(str(path), path.name)
    return message


class AppJobRunner:
    """Runs the page's animation jobs one after another in job folders under ``work_dir``.

    Args:
        work_dir: where job folders are made (the app's temporary folder).
        checkpoints: models given with ``--checkpoint``, listed after the bundled one.
        device: ``auto``, ``cpu`` or ``cuda``.
        max_upload_mb: the largest input file accepted, in MiB.
    """

    def __init__(self, work_dir: str | Path, *, checkpoints: list[str | Path] | None = None, device: str = "auto",
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB):
        self.work_dir = Path(work_dir)
        self.device = device
        self.max_upload_mb = max_upload_mb
        self.models: dict[str, Path] = {}
        try:
            self.models[BUNDLED_MODEL_LABEL] = bundled_model("demo")
        except TalkingHeadError as err:
            log.warning("%s", err)
        for checkpoint in checkpoints or []:
            path = Path(checkpoint)
            if not path.exists():
                raise AppInputError(f"{path}: no such checkpoint file or folder (given with --checkpoint)")
            self.models[str(path)] = path
        if not self.models:
            raise AppInputError("no model to serve: the bundled model is missing; give one with --checkpoint PATH")
        self.portraits = {p.name: p for p in bundled_examples("portraits")}
        self.driving_videos = {p.name: p for p in bundled_examples("videos")}

    # ------------------------------------------------------------------ checks

    def _checked_file(self, path: str | Path, what: str) -> Path:
        path = Path(path)
        if not path.is_file():
            raise AppInputError(f"the {what} {path.name} did not arrive; upload it again")
        megabytes = path.stat().st_size / 2**20
        if megabytes > self.max_upload_mb:
            raise AppInputError(
                f"the {what} {path.name} is {megabytes:.0f} MB, more than the {self.max_upload_mb:g} MB this app "
                "accepts; use a shorter or smaller file"
            )
        return path

    def resolve_inputs(self, request: AppRequest) -> tuple[list[Path], Path, Path]:
        """The source photos, the driving video and the model folder of a request.

        Raises:
            AppInputError: something missing or too large (the message says what to do).
        """
        sources = self._sources(request)
        if request.driving:
            driving = self._checked_file(request.driving, "driving video")
        elif request.bundled_driving in self.driving_videos:
            driving = self.driving_videos[request.bundled_driving]
        else:
            raise AppInputError("no driving video: upload or record one, or pick a bundled driving video")
        return sources, driving, self._model(request)

    def _sources(self, request: AppRequest) -> list[Path]:
        if request.sources:
            return [self._checked_file(p, "source photo") for p in request.sources]
        if request.bundled_source in self.portraits:
            return [self.portraits[request.bundled_source]]
        raise AppInputError("no source photo: upload one or more photos of a person, or pick a bundled portrait")

    def _model(self, request: AppRequest) -> Path:
        if request.model not in self.models:
            raise AppInputError(f"unknown model {request.model!r}; choose one of: {', '.join(self.models)}")
        return self.models[request.model]

    def live_session(self, request: AppRequest) -> tuple[LiveSession | None, str]:
        """A :class:`LiveSession` for the request's photos and model, and a line for the page.

        Never raises for bad input: a session of None comes with the message.
        """
        uploads = [Path(p) for p in request.sources]
        try:
            sources, model = self._sources(request), self._model(request)
            pipeline = AnimationPipeline.from_pretrained(model, device=self.device)
            session = LiveSession(pipeline, list(sources), size=int(request.output_size), motion=request.motion)
        except TalkingHeadError as err:
            return None, f"Could not start live mode: {_without_folders(str(err), uploads)}"
        return session, f"Live mode ready for {', '.join(p.name for p in sources)}: start the webcam."

    # ------------------------------------------------------------------ running

    def _new_job_dir(self) -> Path:
        jobs = self.work_dir / "jobs"
        jobs.mkdir(parents=True, exist_ok=True)
        # The page may still be serving the last results; older job folders go.
        for old in sorted(jobs.iterdir(), key=lambda p: p.stat().st_mtime)[: -KEEP_JOBS + 1]:
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=time.strftime("%H%M%S-"), dir=jobs))

    def run(self, request: AppRequest, report: Callable[[float, str], None] | None = None) -> AppResult:
        """Animate one request; never raises for bad input (the answer carries the message).

        Args:
            request: the page's inputs.
            report: called with (fraction done in [0, 1], what is happening) as the job goes.
        """
        report = report or (lambda fraction, text: None)
        uploads = [Path(p) for p in [*request.sources, request.driving] if p]
        try:
            sources, driving, model = self.resolve_inputs(request)
            if request.finetune_steps < 0 or request.max_frames < 0:
                raise AppInputError("fine-tuning steps and the frame limit must be 0 or more")
            options = AnimateOptions(motion=request.motion, smooth=float(request.smooth), paste_back=request.paste_back)
            total = open_frame_source(driving).info.num_frames
            if request.max_frames:
                total = min(total, request.max_frames)
            job_dir = self._new_job_dir()
            job = AnimateJob(
                checkpoint=model, driving=driving, sources=sources,
                outputs=[OutputSpec(job_dir / "result.mp4"), OutputSpec(job_dir / "side_by_side.mp4", "side_by_side")],
                finetune_steps=int(request.finetune_steps), max_frames=request.max_frames or None,
                output_size=int(request.output_size), device=self.device, progress=False, command="app",
            )
            report(0.0, f"fine-tuning on the photo(s), {job.finetune_steps} steps" if job.finetune_steps
                   else "reading the source photo(s)")

            def on_frame(frame) -> None:
                report(min(frame.index + 1, total) / max(total, 1), f"frame {frame.index + 1} of {total}")

            summary = run_animate(job, options, on_frame=on_frame)
        except TalkingHeadError as err:
            return AppResult(error=_without_folders(str(err), uploads))
        except Exception:  # a bug: the server log keeps the traceback, the page gets one line
            log.exception("the animation job failed")
            return AppResult(error="an internal error stopped the job (the server log has the details); "
                                   "try other inputs, and please report it")
        warning = "; ".join(_without_folders(w, uploads) for w in summary.warnings) or None
        return AppResult(job.outputs[0].path, job.outputs[1].path, summary, warning=warning)
