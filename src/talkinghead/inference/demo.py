"""``talkinghead demo``: animate a bundled portrait with a bundled driving video, offline.

Uses the MetaPortrait model shipped in ``models/demo`` (see its MODEL_CARD.md; the earlier
LSR toy is ``models/lsr_demo``) and writes
``demo_out/result.mp4`` (the animated face), ``demo_out/side_by_side.mp4`` (source |
driving | result) and ``demo_out/strip.png`` (a few frames: driving above, result below).
The demo's own output files are replaced on every run (a marker file in the folder records
them); a file of the same name that the demo did not write is never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talkinghead.data.crop import crop_image
from talkinghead.data.frame_source import open_frame_source
from talkinghead.inference.animate_job import (
    AnimateJob,
    AnimateSummary,
    OutputSpec,
    run_animate,
)
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimatedFrame
from talkinghead.inference.views import resize_to_height
from talkinghead.utils.atomic import atomic_path
from talkinghead.utils.bundled import DEFAULT_MODEL, bundled_path, resolve_model
from talkinghead.errors import InputNotFoundError
from talkinghead.utils.output_guard import (
    check_output_location,
    check_own_files,
    check_writable,
    output_errors,
    update_marker,
)

# From the source checkout or, in an installed wheel, from the package's bundled copies.
DEMO_MODEL = bundled_path(f"models/{DEFAULT_MODEL}")
DEMO_SOURCE = bundled_path("examples/portraits/sadtalker_happy.png")
DEMO_DRIVING = bundled_path("examples/videos/liveportrait_d18.mp4")
VIEW_SIZE = 256
DEMO_OUTPUT = "demo_out"
# The bundled MetaPortrait model is one-shot: it warps the portrait's own pixels, so it needs
# no fine-tuning on it (the LSR toy in models/lsr_demo wants --finetune-steps 100).
DEMO_FINETUNE_STEPS = 0
STRIP_FRAMES = 6
DEMO_FILES = ("result.mp4", "side_by_side.mp4", "strip.png")


@dataclass
class DemoResult:
    """The files a demo run wrote, and the animation summary."""

    result: Path
    side_by_side: Path
    strip: Path
    summary: AnimateSummary

    def format(self) -> str:
        return (
            f"{self.summary.format()}\n"
            f"demo written:\n  {self.result}  (the animated portrait)\n"
            f"  {self.side_by_side}  (source | driving | result)\n  {self.strip}  (frames: driving above, result below)"
        )


def _bundled(path: Path, what: str, option: str) -> Path:
    if not path.exists():
        raise InputNotFoundError(
            f"{path}: the bundled {what} is missing; it ships with talkinghead (the source checkout and "
            f"the wheel); reinstall it, or pass your own with {option}"
        )
    return path


class StripCollector:
    """Keeps a few evenly spaced frames and draws them as one PNG strip."""

    def __init__(self, total: int, count: int = STRIP_FRAMES, size: int = 128):
        self.wanted = set(np.linspace(0, max(total - 1, 0), num=min(count, total)).round().astype(int).tolist())
        self.size = size
        self.columns: list[np.ndarray] = []

    def __call__(self, frame: AnimatedFrame) -> None:
        if frame.index in self.wanted:
            driving = crop_image(frame.driving, frame.driving_box, self.size)
            result = resize_to_height(frame.image, self.size)
            self.columns.append(np.concatenate([driving, result], axis=0))

    def save(self, path: Path, source_crop: np.ndarray) -> Path:
        """Write source (top left) then one column per kept frame."""
        source = np.zeros((2 * self.size, self.size, 3), np.uint8)
        source[: self.size] = resize_to_height(source_crop, self.size)
        strip = np.concatenate([source, *self.columns], axis=1)
        with atomic_path(path, suffix=".png") as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {path}")
        return path


def run_demo(
    output_dir: str | Path = DEMO_OUTPUT,
    *,
    checkpoint: str | Path | None = None,
    sources: list[str | Path] | None = None,
    driving: str | Path | None = None,
    options: AnimateOptions | None = None,
    device: str = "auto",
    max_frames: int | None = None,
    finetune_steps: int = DEMO_FINETUNE_STEPS,
    progress: bool = True,
    runtime: str = "eager",
    threads: int | None = None,
) -> DemoResult:
    """Animate the bundled (or given) portrait with the bundled (or given) driving video (``runtime`` and
    ``threads`` as in :class:`~talkinghead.inference.animate_job.AnimateJob`)."""
    output_dir = Path(output_dir)
    checkpoint = resolve_model(checkpoint) if checkpoint else _bundled(DEMO_MODEL, "demo model", "--checkpoint")
    sources = [Path(s) for s in sources] if sources else [_bundled(DEMO_SOURCE, "portrait", "--source")]
    driving = Path(driving) if driving else _bundled(DEMO_DRIVING, "driving video", "--driving")
    check_output_location(output_dir, {"checkpoint": checkpoint, "source photo": sources, "driving video": driving})
    check_own_files(output_dir, DEMO_FILES, "demo")
    check_writable(output_dir / DEMO_FILES[0])
    with output_errors(output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        # Claimed before writing: a run killed between two files still owns the first one.
        update_marker(output_dir, DEMO_FILES, "demo")
    job = AnimateJob(
        checkpoint=checkpoint,
        driving=driving,
        sources=sources,
        outputs=[OutputSpec(output_dir / "result.mp4"), OutputSpec(output_dir / "side_by_side.mp4", "side_by_side")],
        max_frames=max_frames,
        finetune_steps=finetune_steps,
        output_size=VIEW_SIZE,
        overwrite=True,  # the demo's own files (checked above)
        device=device,
        progress=progress,
        runtime=runtime,
        threads=threads,
        command="demo",
    )
    total = open_frame_source(driving).info.num_frames
    strip = StripCollector(min(total, max_frames or total), size=VIEW_SIZE)  # at the result's 256 px
    summary = run_animate(job, options or AnimateOptions(motion="relative"), on_frame=strip)
    with output_errors(output_dir / "strip.png"):
        strip_path = strip.save(output_dir / "strip.png", summary.source.reference.crop)
    return DemoResult(job.outputs[0].path, job.outputs[1].path, strip_path, summary)
