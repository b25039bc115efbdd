"""Options of one animation pass (what the pipeline does per driving frame).

Paths, output formats and overwrite rules belong to the command (``talkinghead animate``);
the detector and crop come with the model (its training data's preparation settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from talkinghead.errors import InvalidInputError

MOTION_MODES = ("relative", "absolute")


@dataclass
class AnimateOptions:
    """How driving frames become synthesised frames.

    Args:
        motion: ``relative`` (default; for another person's video): the driver's motion
            relative to its neutral frame is applied to the source's own landmarks, scaled
            by face size, so the source keeps its face shape. ``absolute``: the driver's
            landmarks as they are (right for self-reenactment, where the driver is the
            source person).
        smooth: sigma in frames of a centred Gaussian over the driver's landmark track
            (0 = off); 1-2 removes detector jitter. Delays output by ``ceil(3 * smooth)`` frames.
        expression_scale: gain on the driver's expression change in ``relative`` mode
            (1 = as the driver; 0 = head pose only; above 1 exaggerates).
        retarget: regions (``eyes``, ``lips``) whose opening ratios follow the driver's change
            since its neutral frame from a neutral rest (mouth closed, eyes open), whatever the
            source photo shows; ``relative`` mode with mediapipe landmarks.
        stabilize: steady the driver's head pose with an adaptive low-pass (One Euro filter on
            scale, rotation and translation; no delay, expressions untouched) in ``relative``
            mode with mediapipe landmarks, against detector jitter of a still head.
        mouth: paint teeth, tongue and cavity into an opening mouth with the model's mouth
            generator, when it has one (``--no-mouth``: the face networks' frame as it is).
        canonical_frame: False uses the earlier 2-D/3-D similarity relative motion instead of the
            canonical 3-D frame (for before/after comparisons; not a CLI option).
        batch_size: driving frames synthesised per network call.
        paste_back: also blend each synthesised face into the full source photo.
        face_index: which face of the driving video to follow (0 = the main face).
        precision: ``fp32``, or ``bf16`` / ``fp16`` autocast on a GPU.
        overlap: decode, detect and rasterise the next frames in a worker thread while a
            batch is synthesised (same frames, same order). Turn it off for streams that must
            not be read ahead (a live feed hands over one frame at a time; the live path does).
    """

    motion: Literal["relative", "absolute"] = "relative"
    smooth: float = 0.0
    expression_scale: float = 1.0
    retarget: tuple[str, ...] = ()
    stabilize: bool = True
    mouth: bool = True
    canonical_frame: bool = True
    batch_size: int = 8
    paste_back: bool = False
    face_index: int = 0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    overlap: bool = True

    def __post_init__(self):
        if self.motion not in MOTION_MODES:
            raise InvalidInputError(f"motion must be one of {', '.join(MOTION_MODES)}, got {self.motion!r}")
        if self.smooth < 0:
            raise InvalidInputError(f"smooth must be >= 0 frames, got {self.smooth}")
        if not math.isfinite(self.expression_scale) or self.expression_scale < 0:
            raise InvalidInputError(f"expression_scale must be a number >= 0, got {self.expression_scale}")
        self.retarget = tuple(self.retarget)
        if not set(self.retarget) <= {"eyes", "lips"}:
            raise InvalidInputError(f"retarget takes eyes and/or lips, got {', '.join(self.retarget)}")
        if self.batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.face_index < 0:
            raise InvalidInputError(f"face_index must be >= 0, got {self.face_index}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise InvalidInputError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
