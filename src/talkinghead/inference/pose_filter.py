"""Steadying the driver's head pose: an adaptive low-pass on (s, R, t), frame by frame.

A still driver's landmarks jitter by a fraction of a pixel from frame to frame (detector
noise), and relative motion carries that jitter onto the source's whole head. The One Euro
filter (Casiez, Roussel and Vogel, CHI 2012) fits the case: a first-order low-pass whose cutoff
rises with the signal's speed, so a head at rest is held steady while a turn passes with
little lag. It is causal (no frames of delay, so it also runs live) and is applied to the
head pose only: the expression (mouth, eyes) is never smoothed by it.

The pose's speed is measured scale-free: the change of log-scale, of the rotation matrix
(Frobenius norm, about the angle in radians) and of the translation in units of the face's
scale, per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkinghead.data.landmarks.canonical_frame import CanonicalPose

# Cutoffs in cycles per frame (at 25 frames/s, 0.03 is 0.75 Hz). At rest the pose is held by a
# 0.03 cutoff; each face-width (or radian) per frame of speed raises it by BETA. Chosen on synthetic
# poses: noise steps cut to a third, and a 2-degree-a-frame turn followed within 0.9 degrees.
MIN_CUTOFF = 0.03
BETA = 8.0
DERIVATIVE_CUTOFF = 0.1


def _alpha(cutoff: float) -> float:
    """Smoothing factor of a first-order low-pass with ``cutoff`` cycles per frame (one-frame steps)."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau)


def _nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) proper rotation nearest to ``matrix`` (Frobenius), via the SVD."""
    u, _, vt = np.linalg.svd(matrix)
    signs = np.ones(3)
    signs[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag(signs) @ vt


@dataclass
class _State:
    log_scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)
    speed: float = 0.0


class PoseFilter:
    """One Euro filter over a sequence of head poses (scale, rotation, translation).

    Call it with each frame's pose in order; it returns the pose with a steadied ``scale``,
    ``rotation`` and ``translation`` and the frame's own ``delta``. The first pose passes
    unchanged. Use a new filter for each video.

    Args:
        min_cutoff: cutoff at rest, cycles per frame (lower = steadier, more lag at the start of a move).
        beta: how fast the cutoff rises with the pose's speed.
        derivative_cutoff: cutoff of the speed estimate, cycles per frame.
    """

    def __init__(self, min_cutoff: float = MIN_CUTOFF, beta: float = BETA,
                 derivative_cutoff: float = DERIVATIVE_CUTOFF) -> None:
        if min_cutoff <= 0 or beta < 0 or derivative_cutoff <= 0:
            raise ValueError(f"pose filter needs min_cutoff > 0, beta >= 0, derivative_cutoff > 0; "
                             f"got {min_cutoff}, {beta}, {derivative_cutoff}")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.derivative_cutoff = derivative_cutoff
        self._state: _State | None = None

    def __call__(self, pose: CanonicalPose) -> CanonicalPose:
        log_scale = math.log(pose.scale)
        rotation = np.asarray(pose.rotation, dtype=np.float64)
        translation = np.asarray(pose.translation, dtype=np.float64)
        if self._state is None:
            self._state = _State(log_scale, rotation, translation)
            return pose
        state = self._state
        raw_speed = (abs(log_scale - state.log_scale)
                     + float(np.linalg.norm(rotation - state.rotation))
                     + float(np.linalg.norm(translation - state.translation)) / pose.scale)
        state.speed += _alpha(self.derivative_cutoff) * (raw_speed - state.speed)
        alpha = _alpha(self.min_cutoff + self.beta * state.speed)
        state.log_scale += alpha * (log_scale - state.log_scale)
        state.rotation = _nearest_rotation(state.rotation + alpha * (rotation - state.rotation))
        state.translation = state.translation + alpha * (translation - state.translation)
        return CanonicalPose(scale=math.exp(state.log_scale), rotation=state.rotation.copy(),
                             translation=state.translation.copy(), delta=pose.delta)
