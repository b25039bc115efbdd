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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from talkinghead.app.live import LiveSession
from talkinghead.config.prepare import PrepareConfig
from talkinghead.data.landmarks.factory import create_landmarker
from talkinghead.data.frame_source import open_frame_source
from talkinghead.data.image_sequence import read_image
from talkinghead.data.video import read_video_frames
from talkinghead.errors import TalkingHeadError
from talkinghead.inference.animate_job import AnimateJob, AnimateSummary, OutputSpec, run_animate
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline
from talkinghead.inference.source import FaceIndexError, SourceFace, prepare_source_face
from talkinghead.inference.source_orientation import describe_turn
from talkinghead.models.pretrained import load_pretrained
from talkinghead.utils.bundled import DEFAULT_MODEL, bundled_examples, bundled_model, bundled_model_names, resolve_model

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 50
# Longest side of the photo previews and of the driving videos' thumbnails, in pixels.
PREVIEW_SIDE = 320
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
        model: a label of :attr:`AppJobRunner.models` (None: the first, the bundled model).
        motion: ``relative`` or ``absolute``.
        smooth: Gaussian sigma in frames over the driver's landmark track (0 = off).
        paste_back: blend the face back into the full source photo.
        finetune_steps: subject fine-tuning steps on the photos first (0 = off).
        output_size: height in pixels of the crop views.
        max_frames: animate only the first N driving frames (0 = all).
        face_index: which face of the source photos to animate (0 = the largest).
    """

    sources: list[str] = field(default_factory=list)
    bundled_source: str | None = None
    driving: str | None = None
    bundled_driving: str | None = None
    model: str | None = None
    motion: str = "relative"
    smooth: float = 0.0
    paste_back: bool = False
    finetune_steps: int = 0
    output_size: int = 256
    max_frames: int = 0
    face_index: int = 0


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

    def result_size(self) -> tuple[int, int]:
        """(width, height) of the result video in pixels."""
        info = open_frame_source(self.result).info
        return info.width, info.height

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


@dataclass
class SourceCheck:
    """What the page shows of the source photos before a job: the face each one gives, and warnings.

    Attributes:
        previews: (image, caption) pairs: each photo (downscaled) with its face crop drawn on
            it, then the crop the model sees.
        notes: warnings in plain words (several faces, a small face, a turned photo), each
            naming the page's own control that changes it.
        error: why no face could be used (None when every photo gave one).
    """

    previews: list[tuple[np.ndarray, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def model_label(path: Path) -> str:
    """How the model menu shows a model: its name, then the method and size its release records.

    E.g. ``demo (MetaPortrait, 128 px)`` (see :meth:`PretrainedModel.describe`).

    Raises:
        TalkingHeadError: a release or checkpoint that cannot be read (the message names it).
    """
    return load_pretrained(path).describe()


def source_notes(face: SourceFace, size: int) -> list[str]:
    """The page's warnings about one source photo, each saying which control of the page changes it.

    Args:
        face: the photo as prepared for the model.
        size: the model's image size in pixels.
    """
    notes = []
    if face.faces_found > 1:
        notes.append(
            f"{face.name}: {face.faces_found} faces found; animating face {face.face_index} (0 is the largest). "
            f"To animate another person in the photo, change **Face number** (0 to {face.faces_found - 1})."
        )
    if face.turns:
        notes.append(
            f"{face.name}: the face lay on its side (rotated by about {abs(face.roll_degrees):.0f}°), so the photo "
            f"was turned {describe_turn(face.turns)} to animate it upright. Nothing to do; to silence this, upload "
            "the photo saved upright."
        )
    if face.is_small_for(size):
        notes.append(
            f"{face.name}: the face is small ({face.crop_side:.0f} px around the head, the model works at {size} px), "
            "so the result will be blurry. Upload a larger photo of the person if you have one."
        )
    return notes


def _preview(face: SourceFace) -> np.ndarray:
    """The photo, downscaled to :data:`PREVIEW_SIDE`, with the face crop drawn on it."""
    photo = face.photo
    scale = min(1.0, PREVIEW_SIDE / max(photo.shape[:2]))
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else photo.copy()
    x0, y0, x1, y1 = (int(round(v * scale)) for v in face.box)
    cv2.rectangle(small, (x0, y0), (x1 - 1, y1 - 1), (255, 210, 0), max(1, round(2 * max(small.shape[:2]) / 320)))
    return small


def _without_folders(message: str, paths: list[Path]) -> str:
    """The message with upload folders cut from file paths (a person knows the file by its name)."""
    for path in sorted(paths, key=lambda p: len(str(p)), reverse=True):
        message = message.replace(str(path), path.name)
    return message


def _page_message(err: TalkingHeadError, uploads: list[Path]) -> str:
    """A user error as the page says it: upload folders cut, the page's controls named instead of CLI options."""
    if isinstance(err, FaceIndexError):
        last = err.faces_found - 1
        fix = f"set **Face number** to {'0' if last == 0 else '0 or 1' if last == 1 else f'a number from 0 to {last}'}"
        return _without_folders(f"{err.name}: there is no face {err.face_index} in this photo, only "
                                f"{err.faces_found} face(s) were found; {fix}", uploads)
    return _without_folders(str(err), uploads)


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
        # The default model first (the menu's choice on arrival), then the other bundled talking-head models.
        for name in sorted(bundled_model_names(), key=lambda n: n != DEFAULT_MODEL):
            try:
                path = bundled_model(name)
                self.models[model_label(path)] = path
            except TalkingHeadError as err:  # e.g. models/upscale, a super-resolution release
                if name == DEFAULT_MODEL:
                    log.warning("%s", err)
        for checkpoint in checkpoints or []:
            path = resolve_model(checkpoint)
            if not path.exists():
                raise AppInputError(f"{path}: no such checkpoint file or folder (given with --checkpoint)")
            self.models[model_label(path)] = path
        if not self.models:
            raise AppInputError("no model to serve: the bundled model is missing; give one with --checkpoint PATH")
        self.portraits = {p.name: p for p in bundled_examples("portraits")}
        self.driving_videos = {p.name: p for p in bundled_examples("videos")}
        # model label -> (its data preparation, its image size), read once for the source checks
        self._model_settings: dict[str, tuple[PrepareConfig, int]] = {}
        self._landmarkers: dict[tuple[str, float], object] = {}
        self._check_lock = threading.Lock()  # one landmark detector, used by one page event at a time

    @property
    def default_model(self) -> str:
        """The label of the model the page offers first (the bundled one, when installed)."""
        return next(iter(self.models))

    def video_thumbnails(self) -> list[tuple[Path, str]]:
        """(image, name) of every bundled driving video: its first frame, written once under ``work_dir``."""
        folder = self.work_dir / "thumbnails"
        folder.mkdir(parents=True, exist_ok=True)
        thumbnails = []
        for name, video in self.driving_videos.items():
            image = folder / f"{video.stem}.jpg"
            if not image.is_file():
                _, _, frame = next(read_video_frames(video, [0]))
                scale = min(1.0, PREVIEW_SIDE / max(frame.shape[:2]))
                frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(image), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            thumbnails.append((image, name))
        return thumbnails

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
        label = request.model or self.default_model
        if label not in self.models:
            raise AppInputError(f"unknown model {label!r}; choose one of: {', '.join(self.models)}")
        return self.models[label]

    def check_sources(self, request: AppRequest) -> SourceCheck:
        """Find the face of each source photo as the job will, for the page to show before it runs.

        Never raises for bad input: the answer's ``error`` carries the message.
        """
        uploads = [Path(p) for p in request.sources]
        try:
            if request.face_index < 0:
                raise AppInputError("the face number must be 0 or more")
            sources, label = self._sources(request), request.model or self.default_model
            path = self._model(request)
            if label not in self._model_settings:
                model = load_pretrained(path)
                self._model_settings[label] = (model.prepare_config(), model.config.image_size)
            prepare, size = self._model_settings[label]
            check = SourceCheck()
            with self._check_lock:
                key = (prepare.landmarks, prepare.min_detection_confidence)
                if key not in self._landmarkers:
                    self._landmarkers[key] = create_landmarker(*key)
                for source in sources:
                    face = prepare_source_face(read_image(source), source.name, self._landmarkers[key], prepare, size,
                                               face_index=int(request.face_index))
                    check.previews += [(_preview(face), f"{source.name}: face {face.face_index} of "
                                                        f"{face.faces_found}"),
                                       (face.crop, f"{source.name}: what the model sees ({size} px)")]
                    check.notes += source_notes(face, size)
        except TalkingHeadError as err:
            return SourceCheck(error=_page_message(err, uploads))
        return check

    def close(self) -> None:
        """Release the landmark detectors of the source checks."""
        for landmarker in self._landmarkers.values():
            landmarker.close()
        self._landmarkers.clear()

    def live_session(self, request: AppRequest) -> tuple[LiveSession | None, str]:
        """A :class:`LiveSession` for the request's photos and model, and a line for the page.

        Never raises for bad input: a session of None comes with the message.
        """
        uploads = [Path(p) for p in request.sources]
        try:
            sources, model = self._sources(request), self._model(request)
            pipeline = AnimationPipeline.from_pretrained(model, device=self.device)
            session = LiveSession(pipeline, list(sources), size=int(request.output_size), motion=request.motion,
                                  face_index=int(request.face_index))
        except TalkingHeadError as err:
            return None, f"Could not start live mode: {_page_message(err, uploads)}"
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
            if request.finetune_steps < 0 or request.max_frames < 0 or request.face_index < 0:
                raise AppInputError("fine-tuning steps, the frame limit and the face number must be 0 or more")
            options = AnimateOptions(motion=request.motion, smooth=float(request.smooth), paste_back=request.paste_back)
            total = open_frame_source(driving).info.num_frames
            if request.max_frames:
                total = min(total, request.max_frames)
            job_dir = self._new_job_dir()
            job = AnimateJob(
                checkpoint=model, driving=driving, sources=sources,
                outputs=[OutputSpec(job_dir / "result.mp4"), OutputSpec(job_dir / "side_by_side.mp4", "side_by_side")],
                finetune_steps=int(request.finetune_steps), max_frames=request.max_frames or None,
                source_face_index=int(request.face_index),
                output_size=int(request.output_size), device=self.device, progress=False, command="app",
            )
            report(0.0, f"fine-tuning on the photo(s), {job.finetune_steps} steps" if job.finetune_steps
                   else "reading the source photo(s)")

            def on_frame(frame) -> None:
                report(min(frame.index + 1, total) / max(total, 1), f"frame {frame.index + 1} of {total}")

            summary = run_animate(job, options, on_frame=on_frame)
        except TalkingHeadError as err:
            return AppResult(error=_page_message(err, uploads))
        except Exception:  # a bug: the server log keeps the traceback, the page gets one line
            log.exception("the animation job failed")
            return AppResult(error="an internal error stopped the job (the server log has the details); "
                                   "try other inputs, and please report it")
        warning = "; ".join(_without_folders(w, uploads) for w in summary.warnings) or None
        return AppResult(job.outputs[0].path, job.outputs[1].path, summary, warning=warning)
