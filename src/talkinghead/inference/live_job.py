"""``talkinghead animate --live``: the driving input played as a live stream, late frames dropped.

The driving video (or folder of frames) is delivered at its own frame rate, as a camera
would, whether or not the animation keeps up; a :class:`~talkinghead.inference.live.LiveAnimator`
animates the newest frame and drops the ones it cannot keep up with. At every input tick the
newest animated frame is written, so the output keeps the input's timing (a slow machine
shows repeated frames, never a drift). The summary line reports frames/s, latency and drops.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass


from talkinghead.errors import InvalidInputError
from talkinghead.inference.driving import DrivingError
from talkinghead.inference.animate_job import DEFAULT_OUTPUT_SIZE, AnimateJob, _driving_frames, _pipeline, check_job
from talkinghead.inference.live import LiveAnimator, LiveAnimatorStats, StreamSession, play_in_real_time
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.views import FrameView
from talkinghead.inference.writers import open_writer
from talkinghead.utils.device import torch_threads
from talkinghead.utils.output_guard import output_errors


@dataclass
class LiveSummary:
    """What a live run did: input frames, frames written, wall time and the animator's counts."""

    frames_in: int
    frames_written: int
    seconds: float
    stats: LiveAnimatorStats
    outputs: list

    def format(self) -> str:
        """``animated N frames in T s (F frames/s; live: latency ..., drops ...) -> outputs``."""
        fps = self.stats.animated / self.seconds if self.seconds > 0 else 0.0
        return (f"animated {self.stats.animated} frames in {self.seconds:.1f} s ({fps:.1f} frames/s; live: "
                f"{self.stats.summary()}; {self.frames_in} input frames, {self.frames_written} written) -> "
                + ", ".join(str(p) for p in self.outputs))


def run_live(job: AnimateJob, options: AnimateOptions | None = None, *, max_latency: float = 0.5) -> LiveSummary:
    """Animate ``job.driving`` as a live stream (see the module docstring).

    Raises:
        InvalidInputError: options a live stream cannot honour (paste-back, smoothing, a
            model that needs future frames, fine-tuning).
    """
    with torch_threads(job.threads):  # the process's thread count is restored afterwards
        return _run_live(job, options or AnimateOptions(), max_latency)


def _run_live(job: AnimateJob, options: AnimateOptions, max_latency: float) -> LiveSummary:
    check_job(job)
    if options.paste_back or options.smooth or job.finetune_steps or job.upscale:
        raise InvalidInputError(
            "--live animates frame by frame: drop --paste-back, --smooth, --finetune-steps and --upscale "
            "(the super-resolution window needs the next frame)"
        )
    info, total, frames, _ = _driving_frames(job, [])  # warnings are logged; the summary shows the stream
    fps = info.fps or job.fps
    with contextlib.ExitStack() as stack:
        pipeline = stack.enter_context(_pipeline(job, options, stack))
        if pipeline.model.temporal_radius > 0:
            raise InvalidInputError(f"{job.checkpoint}: this model smooths over neighbouring frames and cannot "
                                    "animate a live stream; animate without --live")
        if job.load_source is not None:
            pipeline.load_source(job.load_source)
        else:
            pipeline.set_source(job.sources, face_index=job.source_face_index)
        size = job.output_size or DEFAULT_OUTPUT_SIZE
        pipeline.set_output_size(size)  # a warping model renders at the output size, not resized after
        pipeline.set_runtime(job.runtime, batch_size=1)
        session = StreamSession(pipeline, options.motion)
        stack.callback(session.close)
        views = [FrameView(o.view, pipeline.source.reference, size) for o in job.outputs]
        for spec in job.outputs:
            stack.enter_context(output_errors(spec.path))
        writers = [stack.enter_context(open_writer(o.path, fps, overwrite=job.overwrite, max_duration=total / fps,
                                                   command=job.command)) for o in job.outputs]
        animator = stack.enter_context(LiveAnimator(session, max_queue=1, max_latency=max_latency))
        start, count, written, last = time.perf_counter(), 0, 0, None
        for arrived, frame in play_in_real_time(frames, fps):
            animator.submit(frame, arrived)
            last = animator.latest() or last
            count += 1
            if last is not None:  # the newest result at every tick: the output keeps the input's timing
                for view, writer in zip(views, writers):
                    writer.write(view(last))
                written += 1
        animator.wait_idle(timeout=max(10.0, 10 * max_latency))
        if count and not written and animator.stats.without_face:
            # Raised inside the writers' context: they remove their temporaries, nothing is written.
            raise DrivingError(
                f"{job.driving}: no face was found in the {animator.stats.without_face} driving frame(s) the live "
                f"stream processed (of {count}), so nothing was written; use a driving video where one face is "
                "clearly visible"
            )
        seconds = time.perf_counter() - start
    return LiveSummary(frames_in=count, frames_written=written, seconds=seconds, stats=animator.stats,
                       outputs=[o.path for o in job.outputs])
