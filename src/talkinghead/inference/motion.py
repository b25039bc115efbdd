"""Driving-video landmarks to the source person's target landmarks, and their smoothing.

Every driving frame gives landmarks in the driver's image pixels; the generator needs
landmarks for the *source* person in the source's square crop pixels. Two ways:

- ``absolute``: the driver's landmarks themselves, mapped into a crop box. The output
  keeps the driver's face shape (right for self-reenactment).
- ``relative``: the driver's *motion* relative to a neutral reference frame is put on
  the source's own landmarks, in the spirit of the relative motion transfer of FOMM
  (Siarohin et al. 2019) and LivePortrait (Guo et al. 2024). The source keeps its face
  shape and size; only pose changes and expressions come from the driver.

Landmark arrays are (N, 2) or (N, 3): x, y in pixels and an optional depth z on the
same pixel scale (all zeros for 2-D detectors).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from talkinghead.data.crop import points_to_crop
from talkinghead.data.landmarks.similarity import (  # noqa: F401 - re-exported
    MIN_SPREAD,
    Similarity,
    check_points,
    face_scale,
    fit_similarity,
)

MODES = ("absolute", "relative")

class MotionTransfer:
    """Turns each driving frame's landmarks into target landmarks for the source person.

    In ``relative`` mode the driver's motion is split into a rigid part and an
    expression residual. With ``T`` the similarity fitted from the reference onto the
    current frame (``current ≈ T(reference)``), ``s`` and ``R`` its scale and rotation:

    - expression residual ``e = T^-1(current) - reference`` (in the reference's pose
      and scale, so head motion does not leak into it);
    - ``k = face_scale(source) / face_scale(reference)`` carries it to the source's
      size;
    - ``S_e = source + k e`` is the source with the driver's expression;
    - ``delta = T(c_ref) - c_ref`` is the driver's centroid displacement;
    - output ``= s R (S_e - c_S) + c_S + k delta``: the source rotates and scales about
      its own centre ``c_S`` and moves ``k`` times as far as the driver.

    So the reference frame itself gives back the source points, and the source keeps its
    face shape and size while pose and expression follow the driver.

    Args:
        mode: ``"absolute"`` or ``"relative"``.
        size: side of the source's square crop in pixels.
        source_points: (N, d) source landmarks in its crop pixels (``relative``).
        reference_points: (N, d) driver landmarks of a neutral frame, usually the first,
            in driver image pixels (``relative``).
        driver_box: (4,) crop box x0, y0, x1, y1 in driver image pixels (``absolute``).
    """

    def __init__(
        self,
        mode: str,
        *,
        size: int,
        source_points: np.ndarray | None = None,
        reference_points: np.ndarray | None = None,
        driver_box: np.ndarray | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(
                f"unknown motion transfer mode {mode!r}; "
                f"valid modes are {', '.join(MODES)}"
            )
        if size <= 0:
            raise ValueError(f"size must be a positive crop side in pixels, got {size}")
        self.mode = mode
        self.size = int(size)
        if mode == "absolute":
            if driver_box is None:
                raise ValueError(
                    "absolute motion transfer needs driver_box "
                    "(the driver's crop box x0, y0, x1, y1)"
                )
            box = np.asarray(driver_box, dtype=np.float64)
            if box.shape != (4,) or not box[2] > box[0]:
                raise ValueError(
                    "driver_box must be (x0, y0, x1, y1) with x1 > x0, "
                    f"got {driver_box}"
                )
            self.driver_box = box
            return
        if source_points is None or reference_points is None:
            raise ValueError(
                "relative motion transfer needs source_points "
                "(source landmarks in its crop) "
                "and reference_points (the driver's neutral frame landmarks)"
            )
        self.source = check_points(source_points, "source_points")
        self.reference = check_points(reference_points, "reference_points")
        if self.source.shape != self.reference.shape:
            raise ValueError(
                f"source_points {self.source.shape} and "
                f"reference_points {self.reference.shape} "
                f"must have the same shape: use the same landmark detector for both"
            )
        reference_scale = face_scale(self.reference)
        if reference_scale < MIN_SPREAD:
            raise ValueError("reference_points are degenerate: all landmarks coincide")
        self.ratio = face_scale(self.source) / reference_scale  # k
        self.source_centroid = self.source.mean(axis=0)  # (d,) c_S
        self.reference_centroid = self.reference.mean(axis=0)  # (d,) c_ref

    def __call__(self, driver_points: np.ndarray) -> np.ndarray:
        """Target landmarks for one driving frame.

        Args:
            driver_points: (N, d) driver landmarks in driver image pixels.

        Returns:
            (N, d) float32 landmarks in the source crop's pixels.
        """
        if self.mode == "absolute":
            return points_to_crop(driver_points, self.driver_box, self.size)
        current = check_points(driver_points, "driver_points")
        if current.shape != self.reference.shape:
            raise ValueError(
                f"driver_points have shape {current.shape} but the reference has "
                f"{self.reference.shape}; "
                f"every frame must use the same landmark detector"
            )
        transform = fit_similarity(self.reference, current)  # T
        expression = transform.inverse_apply(current) - self.reference  # (N, d) e
        expressive_source = self.source + self.ratio * expression  # (N, d) S_e
        # (d,) delta: how far the driver's face centre moved
        moved_centroid = transform.apply(self.reference_centroid)
        displacement = moved_centroid - self.reference_centroid
        centred = expressive_source - self.source_centroid  # (N, d)
        out = (
            transform.scale * centred @ transform.rotation.T
            + self.source_centroid
            + self.ratio * displacement
        )
        return out.astype(np.float32)


class TemporalSmoother:
    """Streaming, centred Gaussian smoothing of a landmark track against jitter.

    Item ``i`` comes out as the Gaussian-weighted mean of items ``i - radius`` to
    ``i + radius`` with ``radius = ceil(3 sigma)``, so it is final once ``radius`` later
    items have been pushed. Near the start and end of the track the weights are
    renormalised over the items that exist, instead of padding. At most
    ``2 * radius + 1`` items are held.

    Args:
        sigma: standard deviation of the Gaussian in frames; 0 passes items through.
    """

    def __init__(self, sigma: float) -> None:
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(
                f"sigma must be a finite number of frames >= 0, got {sigma}"
            )
        self.sigma = float(sigma)
        self.radius = math.ceil(3 * sigma)
        offsets = np.arange(-self.radius, self.radius + 1, dtype=np.float64)
        if self.radius == 0:
            self._weights = np.ones(1)
        else:
            self._weights = np.exp(
                -0.5 * (offsets / self.sigma) ** 2
            )  # (2 radius + 1,)
        # Already emitted items stay as left context for their successors.
        self._buffer: deque[tuple[np.ndarray, Any]] = deque()
        self._next = 0  # index in the buffer of the oldest item not yet emitted
        self._shape: tuple[int, ...] | None = None

    def push(
        self, points: np.ndarray, payload: Any = None
    ) -> list[tuple[np.ndarray, Any]]:
        """Add one frame's landmarks; return the items that are now final.

        Args:
            points: (N, d) landmarks; every item of a track must have the same shape.
            payload: anything to carry along unchanged (a frame index, the frame).

        Returns:
            A list of (smoothed (N, d) float32 points, payload), oldest first; empty
            while the window still waits for later items.
        """
        array = np.array(points, dtype=np.float32, copy=True)
        if self._shape is None:
            self._shape = array.shape
        elif array.shape != self._shape:
            raise ValueError(
                f"points of shape {array.shape} do not match "
                f"the track's {self._shape}; "
                f"flush() before starting a track with another landmark layout"
            )
        self._buffer.append((array, payload))
        ready = []
        if len(self._buffer) - 1 - self._next >= self.radius:
            ready.append(self._emit())
        return ready

    def flush(self) -> list[tuple[np.ndarray, Any]]:
        """Return every item not yet emitted (the end of the track) and reset.

        Returns:
            A list of (smoothed (N, d) float32 points, payload), oldest first.
        """
        ready = []
        while self._next < len(self._buffer):
            ready.append(self._emit())
        self._buffer.clear()
        self._next = 0
        self._shape = None
        return ready

    def _emit(self) -> tuple[np.ndarray, Any]:
        """Smooth the oldest pending item, then drop context no later item needs."""
        centre = self._next
        first = max(0, centre - self.radius)
        last = min(len(self._buffer), centre + self.radius + 1)
        # (m, N, d) the item and the neighbours that exist, m <= 2 radius + 1
        window = np.stack([self._buffer[i][0] for i in range(first, last)])
        offset = self.radius - centre
        weights = self._weights[first + offset : last + offset]  # (m,)
        # Renormalise over the neighbours that exist, so the ends are not pulled
        # towards a padding value.
        weights = weights / weights.sum()
        smoothed = np.tensordot(weights, window.astype(np.float64), axes=1)
        smoothed = smoothed.astype(np.float32)  # (N, d)
        payload = self._buffer[centre][1]
        self._next += 1
        while self._next > self.radius:
            self._buffer.popleft()
            self._next -= 1
        return smoothed, payload
