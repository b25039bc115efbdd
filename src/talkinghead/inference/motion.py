"""Driving-video landmarks to the source person's target landmarks, and their smoothing.

Every driving frame gives landmarks in the driver's image pixels; the generator needs
landmarks for the *source* person in the source's square crop pixels. Two ways:

- ``absolute``: the driver's landmarks themselves, mapped into a crop box. The output
  keeps the driver's face shape (right for self-reenactment).
- ``relative``: the driver's *motion* relative to a neutral reference frame is put on
  the source's own landmarks. For mediapipe's 478 3-D points this happens in the
  canonical 3-D frame of LivePortrait (Guo et al. 2024): pose and expression are
  separated, and the expression change is added before the source's own rotation, so
  it lands right on a turned source. The source keeps its face shape and size.

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
from talkinghead.data.landmarks.canonical_frame import (
    CanonicalPose,
    canonical_shape,
    decompose,
    is_canonical_layout,
)
from talkinghead.inference.pose_filter import PoseFilter
from talkinghead.data.landmarks.openings import (
    EYE_CONTOURS,
    LIP_CONTOURS,
    EYE_LIDS,
    INNER_LIPS,
    OUTER_EYE_CORNERS,
)

MODES = ("absolute", "relative")

RETARGET_REGIONS = ("eyes", "lips")


def _bump(x: np.ndarray) -> np.ndarray:
    """Weights 1 at the middle of x's extent falling to 0 at its ends (a parabola)."""
    low, high = x.min(), x.max()
    half = max((high - low) / 2, MIN_SPREAD)
    return np.clip(1.0 - ((x - (low + high) / 2) / half) ** 2, 0.0, 1.0)


def _signed_opening(shape: np.ndarray, region: str) -> float:
    """Opening ratio of a (478, 3) canonical shape along its y axis, negative when lips or lids cross."""
    corners = np.linalg.norm(shape[OUTER_EYE_CORNERS[0], :2] - shape[OUTER_EYE_CORNERS[1], :2])
    pairs = [INNER_LIPS] if region == "lips" else list(EYE_LIDS)
    return float(np.mean([shape[lower, 1] - shape[upper, 1] for upper, lower in pairs]) / corners)


def _set_opening(shape: np.ndarray, region: str, target: float) -> np.ndarray:
    """(478, 3) canonical shape with the eyes' or lips' opening ratio moved to ``target``.

    The upper contour moves up and the lower contour down (along the canonical y axis) by
    half the change of gap each, weighted so that the corners stay where they are.
    """
    upper, lower = LIP_CONTOURS if region == "lips" else EYE_CONTOURS
    corners = np.linalg.norm(shape[OUTER_EYE_CORNERS[0], :2] - shape[OUTER_EYE_CORNERS[1], :2])
    change = (target - _signed_opening(shape, region)) * corners  # the gap change in canonical units
    out = shape.copy()
    # eye contours hold the right eye then the left: weight each eye over its own width
    groups = [(upper, lower)] if region == "lips" else [
        (upper[: len(upper) // 2], lower[: len(lower) // 2]),
        (upper[len(upper) // 2 :], lower[len(lower) // 2 :]),
    ]
    for up, down in groups:
        members = list(up) + list(down)
        weights = _bump(shape[members, 0])
        out[list(up), 1] -= 0.5 * change * weights[: len(up)]
        out[list(down), 1] += 0.5 * change * weights[len(up) :]
    return out



def _check_options(mode: str, size: int, expression_scale: float, retarget: tuple[str, ...]) -> None:
    """Refuse an unknown mode or retarget region, a non-positive size and a negative or infinite gain."""
    if mode not in MODES:
        raise ValueError(
            f"unknown motion transfer mode {mode!r}; "
            f"valid modes are {', '.join(MODES)}"
        )
    if size <= 0:
        raise ValueError(f"size must be a positive crop side in pixels, got {size}")
    if not math.isfinite(expression_scale) or expression_scale < 0:
        raise ValueError(f"expression_scale must be a finite number >= 0, got {expression_scale}")
    unknown = set(retarget) - set(RETARGET_REGIONS)
    if unknown:
        raise ValueError(
            f"unknown retarget region(s) {', '.join(sorted(unknown))}; valid: {', '.join(RETARGET_REGIONS)}"
        )


class MotionTransfer:
    """Turns each driving frame's landmarks into target landmarks for the source person.

    ``relative`` mode, for mediapipe's 478 3-D points, works in the canonical 3-D frame
    (``data.landmarks.canonical_frame``; LivePortrait, Guo et al. 2024, §3.2): source,
    neutral driver frame ``d0`` and current driver frame ``di`` are each decomposed into
    ``s R (x_c + delta) + t``, and the output is composed from

    - ``R = R_s R_d0^T R_di``: the driver's rotation since its neutral frame, taken in the
      head's own frame and put on the source's pose (LivePortrait's ``R_di R_d0^-1 R_s``
      written for column vectors);
    - ``delta = delta_s + g (delta_di - delta_d0)``: the expression change, added in the
      canonical frame *before* the rotation, so it lands in the right directions on a
      turned source; ``g`` is ``expression_scale`` (0 = pose only);
    - ``s = s_s s_di / s_d0`` and ``t = t_s + (s_s / s_d0)(t_di - t_d0)``: the driver's
      relative zoom and its moves, carried to the source crop's scale (depth included).

    The neutral frame gives back the source points exactly. A source whose own mouth is
    open or eyes are closed keeps that as its rest state; lips or lids that would cross (a
    driver whose neutral frame is more open than the current one) close instead; ``retarget`` (``"eyes"``,
    ``"lips"``) instead sets the result's opening ratios to the canonical face's (mouth
    closed, eyes open) plus ``g`` times the driver's change of ratio since its neutral
    frame, so such a source follows the driver too.

    Other landmark layouts (68 points, 2-D detectors) keep the 2-D similarity path: the
    expression residual ``e = T^-1(current) - reference`` in the reference's pose, times
    ``k = face_scale(source) / face_scale(reference)`` and ``g``, is added to the source,
    which then turns and moves like the driver about its own centre.

    Args:
        mode: ``"absolute"`` or ``"relative"``.
        size: side of the source's square crop in pixels.
        source_points: (N, d) source landmarks in its crop pixels (``relative``).
        reference_points: (N, d) driver landmarks of a neutral frame, usually the first,
            in driver image pixels (``relative``).
        driver_box: (4,) crop box x0, y0, x1, y1 in driver image pixels (``absolute``).
        expression_scale: gain ``g`` on the driver's expression change (``relative``).
        retarget: regions whose opening ratios follow the driver's (``relative``, 478 points).
        use_canonical: False keeps the similarity path for 478 points too (the relative motion
            before the canonical frame, for before/after benchmarks).
        pose_filter: steadies the driver's head pose frame by frame (canonical frame only);
            then frames must be passed in video order, one transfer per video. None: off.
    """

    def __init__(
        self,
        mode: str,
        *,
        size: int,
        source_points: np.ndarray | None = None,
        reference_points: np.ndarray | None = None,
        driver_box: np.ndarray | None = None,
        expression_scale: float = 1.0,
        retarget: tuple[str, ...] = (),
        use_canonical: bool = True,
        pose_filter: PoseFilter | None = None,
    ) -> None:
        _check_options(mode, size, expression_scale, retarget)
        self.mode = mode
        self.size = int(size)
        self.expression_scale = float(expression_scale)
        self.retarget = tuple(retarget)
        self.pose_filter = pose_filter
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
        self.canonical = use_canonical and is_canonical_layout(self.source) and is_canonical_layout(self.reference)
        if self.retarget and not self.canonical:
            raise ValueError(
                "retargeting needs mediapipe's 478 3-D landmarks for the source and the driver; "
                "use the mediapipe landmark backend or drop the retarget option"
            )
        if self.canonical:
            self._set_canonical_rest()
        self.ratio = face_scale(self.source) / reference_scale  # k
        self.source_centroid = self.source.mean(axis=0)  # (d,) c_S
        self.reference_centroid = self.reference.mean(axis=0)  # (d,) c_ref

    def _set_canonical_rest(self) -> None:
        """Source and neutral-frame poses, and the eye and lip openings retargeting measures from."""
        self.source_pose = decompose(self.source)
        self.reference_pose = decompose(self.reference)
        shape = canonical_shape()
        neutral = shape + self.reference_pose.delta
        self._rest_openings = {region: _signed_opening(shape, region) for region in RETARGET_REGIONS}
        self._neutral_openings = {region: _signed_opening(neutral, region) for region in RETARGET_REGIONS}
        # how far the source's own lips (lids) may cross: not at all, or as far as its photo shows
        own = shape + self.source_pose.delta
        self._closed = {region: min(0.0, _signed_opening(own, region)) for region in RETARGET_REGIONS}

    def target_pose(self, driver_points: np.ndarray) -> CanonicalPose:
        """The result's head pose and canonical expression for one driving frame.

        Args:
            driver_points: (478, 3) driver landmarks in driver image pixels.

        Returns:
            The composed :class:`CanonicalPose` in the source crop's pixels.
        """
        current = decompose(driver_points)
        if self.pose_filter is not None:
            current = self.pose_filter(current)  # the head pose steadied; the expression as detected
        source, neutral = self.source_pose, self.reference_pose
        rotation = source.rotation @ neutral.rotation.T @ current.rotation  # R_s R_d0^T R_di
        delta = source.delta + self.expression_scale * (current.delta - neutral.delta)
        zoom = source.scale / neutral.scale
        pose = CanonicalPose(
            scale=source.scale * current.scale / neutral.scale,
            rotation=rotation,
            translation=source.translation + zoom * (current.translation - neutral.translation),
            delta=delta,
        )
        shape = canonical_shape() + pose.delta
        driven = canonical_shape() + current.delta
        for region in RETARGET_REGIONS:
            if region in self.retarget:
                change = _signed_opening(driven, region) - self._neutral_openings[region]
                target = max(0.0, self._rest_openings[region] + self.expression_scale * change)
                shape = _set_opening(shape, region, target)
            elif _signed_opening(shape, region) < self._closed[region]:
                # a driver whose neutral mouth (eyes) was more open than now would push the
                # source's lips (lids) through each other: they close instead
                shape = _set_opening(shape, region, self._closed[region])
        pose.delta = shape - canonical_shape()
        return pose

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
        if self.canonical and is_canonical_layout(current):
            return self.target_pose(current).compose().astype(np.float32)
        transform = fit_similarity(self.reference, current)  # T
        expression = transform.inverse_apply(current) - self.reference  # (N, d) e
        expressive_source = self.source + self.expression_scale * self.ratio * expression  # (N, d) S_e
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
