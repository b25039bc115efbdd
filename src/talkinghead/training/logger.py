"""What a training run reports: TensorBoard, a metrics.jsonl file, sample PNGs, a progress bar.

Only the main rank logs; every other rank builds its logger with ``enabled=False`` and all
calls become no-ops, so training code needs no ``if rank == 0`` around them. Files in the
run folder::

    run_dir/tensorboard/        # TensorBoard event files
    run_dir/metrics.jsonl       # one JSON object per scalars() call: step, time, values
    run_dir/samples/<tag>-<step>.png
    run_dir/train.log           # every info() message, time-stamped
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from talkinghead.training.image_grid import make_grid
from talkinghead.utils.atomic import atomic_path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _as_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"expected a number or a one-element tensor, got shape {tuple(value.shape)}")
        return float(value.item())
    return float(value)


def _as_uint8_chw(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A (3, H, W) uint8 picture from a uint8 picture or float images in [-1, 1]."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        if image.ndim == 3 and image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"images: a uint8 picture must be (3, H, W), got shape {tuple(image.shape)}")
        return image
    return make_grid([image], padding=0 if image.ndim == 3 else 2)


class TrainingLogger:
    """Logs scalars, images, progress and messages of one run (main rank only).

    Args:
        run_dir: the run's folder.
        enabled: False on non-main ranks: nothing is written or printed.
        total_steps: length of the run, for the progress bar's ETA.
        use_tensorboard: write TensorBoard events (when the ``tensorboard`` package exists).
    """

    def __init__(
        self, run_dir: str | Path, enabled: bool, total_steps: int | None = None, *, use_tensorboard: bool = True
    ):
        self.run_dir = Path(run_dir)
        self.enabled = bool(enabled)
        self.total_steps = total_steps
        self._writer = None
        self._bar = None
        self._metrics = None
        self._log = None
        if not self.enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = self.run_dir / "metrics.jsonl"
        # A run killed mid-line leaves a partial last line; start the next on a fresh line.
        needs_newline = metrics_path.is_file() and metrics_path.stat().st_size > 0
        if needs_newline:
            with open(metrics_path, "rb") as handle:
                handle.seek(-1, 2)
                needs_newline = handle.read(1) != b"\n"
        self._metrics = open(metrics_path, "a", encoding="utf-8")
        if needs_newline:
            self._metrics.write("\n")
        self._log = open(self.run_dir / "train.log", "a", encoding="utf-8")
        if use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.info("tensorboard is not installed (pip install tensorboard); metrics go to metrics.jsonl only")
            else:
                self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def scalars(self, values: Mapping[str, Any], step: int) -> None:
        """Log named numbers (floats, ints or one-element tensors) at ``step``.

        Each call appends one line to ``metrics.jsonl`` and flushes it, so a crash loses at
        most the line being written.
        """
        if not self.enabled:
            return
        numbers = {name: _as_float(value) for name, value in values.items()}
        record = {"step": int(step), "time": time.time(), **numbers}
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        if self._writer is not None:
            for name, number in numbers.items():
                self._writer.add_scalar(name, number, int(step))

    def images(self, tag: str, image: torch.Tensor | np.ndarray, step: int) -> Path | None:
        """Log a picture to TensorBoard and as ``samples/<tag>-<step>.png``.

        Args:
            tag: name of the picture (``/`` and other unsafe characters become ``_`` in the
                file name).
            image: a (3, H, W) uint8 grid from :func:`make_grid`, or float images in
                [-1, 1] shaped (c, H, W) or (b, c, H, W) (laid out in a row).
            step: the training step.

        Returns:
            The PNG written (None when disabled).
        """
        if not self.enabled:
            return None
        picture = _as_uint8_chw(image)
        if self._writer is not None:
            self._writer.add_image(tag, picture, int(step), dataformats="CHW")
        from PIL import Image

        path = self.run_dir / "samples" / f"{_UNSAFE.sub('_', tag)}-{int(step):08d}.png"
        with atomic_path(path, suffix=".png") as tmp:
            Image.fromarray(picture.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
        return path

    def image_rows(self, tag: str, rows: Sequence[torch.Tensor], step: int, padding: int = 2) -> Path | None:
        """:meth:`images` of ``make_grid(rows, padding)`` (rows of (b, c, h, w) in [-1, 1])."""
        if not self.enabled:
            return None
        return self.images(tag, make_grid(rows, padding=padding), step)

    def start_progress(self, total_steps: int | None, *, initial: int = 0, description: str | None = None) -> None:
        """Start a new progress bar (e.g. one per stage), closing the previous one.

        Args:
            total_steps: length of what the bar counts (its ETA).
            initial: steps already done (a resumed stage's ETA counts only what is left).
            description: label shown before the bar.
        """
        if not self.enabled:
            return
        from tqdm import tqdm

        self.end_progress()
        self.total_steps = total_steps
        self._bar = tqdm(
            total=total_steps, initial=int(initial), desc=description, dynamic_ncols=True, file=sys.stderr
        )

    def end_progress(self) -> None:
        """Close the current progress bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def progress(self, step: int, postfix: Mapping[str, Any] | None = None) -> None:
        """Move the progress bar to ``step`` (steps done) and show ``postfix`` numbers beside it.

        Without :meth:`start_progress`, the first call starts a bar over ``total_steps``
        from ``step``.
        """
        if not self.enabled:
            return
        if self._bar is None:
            self.start_progress(self.total_steps, initial=step)
        self._bar.update(int(step) - self._bar.n)
        if postfix:
            shown = {}
            for name, value in postfix.items():
                try:
                    shown[name] = f"{_as_float(value):.4g}"
                except (TypeError, ValueError):
                    shown[name] = str(value)
            self._bar.set_postfix(shown, refresh=False)

    def info(self, message: str) -> None:
        """Print ``message`` above the progress bar and append it to ``train.log``."""
        if not self.enabled:
            return
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        for line in str(message).splitlines() or [""]:
            self._log.write(f"{stamp} {line}\n")
        self._log.flush()

    def close(self) -> None:
        """Flush and close everything (safe to call more than once)."""
        self.end_progress()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for handle in (self._metrics, self._log):
            if handle is not None and not handle.closed:
                handle.close()

    def __enter__(self) -> "TrainingLogger":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

