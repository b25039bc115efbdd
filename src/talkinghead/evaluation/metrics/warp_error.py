"""E_warp: the temporal warping error of a generated video (MetaPortrait, Sec. 4.1).

MetaPortrait measures flicker "following previous works": each frame ``t`` is compared with the
previous frame ``t - 1`` warped to it by the estimated optical flow, inside the occlusion mask.
That is the warping error of Lai et al. (ECCV 2018, "Learning blind video temporal
consistency"), the usual definition of E_warp, and this follows their evaluation code:

* the flow and the occlusion mask come from the reference (ground-truth / driving) video when
  there is one, as Lai et al. take them from the unprocessed input video: flow estimated on the
  evaluated frames would be misled by the very artefacts being measured. Without a reference
  they come from the evaluated frames themselves;
* a pixel is occluded when the forward and backward flows disagree (the test of Sundaram et al.
  2010 / Ruder et al. 2016: ``|b + f(x + b)|^2 >= 0.01 (|b|^2 + |f(x + b)|^2) + 0.5``) or when it
  lies on a motion boundary (``|grad b|^2 > 0.01 |b|^2 + 0.002``), or when the flow points
  outside the image;
* the error is the *mean squared* difference of RGB values in [0, 1] over the non-occluded
  pixels and the three channels (Lai et al. sum the squared differences and divide by the count
  of mask entries, one per pixel and channel).

Lai et al. warp frame ``t`` back onto frame ``t - 1``; MetaPortrait's text warps ``t - 1`` onto
``t``, which is what this does (the mirror image of the same test, masks computed on frame ``t``).
Lai et al. use FlowNet2 (MetaPortrait does not name its flow network); this implementation uses
OpenCV's Farneback flow so that it needs no network weights. Absolute values therefore differ
from the papers' tables: compare methods with the same implementation only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.evaluation.metrics.base import check_image_batch, register_metric


@dataclass(frozen=True)
class FarnebackOptions:
    """Parameters of ``cv2.calcOpticalFlowFarneback`` (OpenCV's documented example values).

    Attributes:
        pyr_scale: scale between pyramid levels (0.5: each level halves the image).
        levels: pyramid levels; 3 levels with a 15-pixel window follow motions of a few tens of
            pixels, more than a head moves between consecutive frames at 25-30 fps.
        winsize: averaging window; larger is more robust to noise but blurs motion boundaries.
        iterations: iterations per pyramid level.
        poly_n: neighbourhood of the per-pixel polynomial expansion (5 or 7).
        poly_sigma: Gaussian sigma of that expansion (1.1 for poly_n 5, 1.5 for 7, per OpenCV).
    """

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2


def optical_flow(source: np.ndarray, destination: np.ndarray, options: FarnebackOptions | None = None) -> np.ndarray:
    """Dense Farneback flow such that ``source[y, x] ~ destination[y + v, x + u]``.

    Args:
        source: (h, w) uint8 grayscale frame.
        destination: (h, w) uint8 grayscale frame.
        options: Farneback parameters (default :class:`FarnebackOptions`).

    Returns:
        (h, w, 2) float32 flow ``(u, v)`` in pixels, defined on the source's pixel grid.
    """
    options = options or FarnebackOptions()
    return cv2.calcOpticalFlowFarneback(
        source, destination, None, options.pyr_scale, options.levels, options.winsize,
        options.iterations, options.poly_n, options.poly_sigma, 0,
    )


def _sampling_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates ``x + u``, ``y + v`` for cv2.remap, each (h, w) float32."""
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return grid_x + flow[..., 0], grid_y + flow[..., 1]


def warp_by_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warping: ``out[y, x] = image[y + v, x + u]`` with bilinear interpolation.

    Args:
        image: (h, w) or (h, w, c) float32 image to sample from.
        flow: (h, w, 2) flow on the output's pixel grid, pointing into ``image``.

    Returns:
        The warped image, same shape as ``image``; zeros where the flow points outside it.
    """
    map_x, map_y = _sampling_maps(flow)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def visible_mask(backward: np.ndarray, forward: np.ndarray, use_motion_boundaries: bool = True) -> np.ndarray:
    """Pixels of frame ``t`` that are visible in frame ``t - 1`` and followed reliably by the flow.

    Args:
        backward: (h, w, 2) flow from frame t to frame t - 1 (on frame t's grid).
        forward: (h, w, 2) flow from frame t - 1 to frame t (on frame t - 1's grid).
        use_motion_boundaries: also drop pixels where the backward flow changes sharply, as
            Ruder et al. and Lai et al. do (flow is least reliable there).

    Returns:
        (h, w) bool, True where the pixel counts towards the warping error.
    """
    h, w = backward.shape[:2]
    # The forward flow at the point each pixel of t came from; for a visible pixel it undoes
    # the backward flow, so their sum is close to zero.
    forward_at_source = warp_by_flow(np.ascontiguousarray(forward, dtype=np.float32), backward)  # (h, w, 2)
    round_trip = np.sum((backward + forward_at_source) ** 2, axis=-1)
    magnitudes = np.sum(backward**2, axis=-1) + np.sum(forward_at_source**2, axis=-1)
    visible = round_trip < 0.01 * magnitudes + 0.5
    if use_motion_boundaries:
        # Forward differences of each flow component; the last row / column has none.
        du = np.zeros((h, w, 2), np.float32)
        dv = np.zeros((h, w, 2), np.float32)
        du[:, :-1] = backward[:, :-1] - backward[:, 1:]
        dv[:-1] = backward[:-1] - backward[1:]
        gradient = np.sum(du**2 + dv**2, axis=-1)
        visible &= gradient <= 0.01 * np.sum(backward**2, axis=-1) + 0.002
    # Pixels whose source lies outside frame t - 1 have nothing to be compared with.
    map_x, map_y = _sampling_maps(backward)
    visible &= (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return visible


def warping_error(previous: np.ndarray, current: np.ndarray, backward: np.ndarray, visible: np.ndarray) -> float:
    """Mean squared RGB difference between ``current`` and ``previous`` warped to it.

    Args:
        previous: (h, w, 3) uint8 frame t - 1.
        current: (h, w, 3) uint8 frame t.
        backward: (h, w, 2) flow from frame t to frame t - 1.
        visible: (h, w) bool mask of the pixels to compare.

    Returns:
        The mean over visible pixels and the three channels of the squared difference of
        values in [0, 1]; NaN when no pixel is visible.
    """
    count = int(visible.sum())
    if count == 0:
        return float("nan")
    warped = warp_by_flow(previous.astype(np.float32) / 255.0, backward)  # (h, w, 3)
    diff = current.astype(np.float32) / 255.0 - warped
    squared = np.sum(diff.astype(np.float64) ** 2, axis=-1)  # (h, w), summed over channels
    return float(squared[visible].sum() / (3 * count))


@register_metric(
    "warp_error",
    "video",
    higher_is_better=False,
    description="E_warp (MetaPortrait / Lai et al.): MSE of RGB in [0,1] between frame t and frame t-1 warped "
    "by Farneback flow, over non-occluded pixels",
)
class WarpError:
    """E_warp metric: ``metric(frames, reference=None) -> (t - 1,)`` values, lower is steadier.

    Args:
        use_motion_boundaries: drop motion-boundary pixels from the mask (Lai et al. do).
        pyr_scale, levels, winsize, iterations, poly_n, poly_sigma: Farneback parameters,
            see :class:`FarnebackOptions`.
    """

    def __init__(
        self,
        *,
        use_motion_boundaries: bool = True,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
    ):
        if not 0 < pyr_scale < 1:
            raise ValueError(f"pyr_scale must lie in (0, 1), got {pyr_scale}")
        if levels < 1 or winsize < 1 or iterations < 1 or poly_n not in (5, 7):
            raise ValueError(
                f"Farneback needs levels, winsize, iterations >= 1 and poly_n 5 or 7, got "
                f"{levels}, {winsize}, {iterations}, {poly_n}"
            )
        self.use_motion_boundaries = use_motion_boundaries
        self.flow_options = FarnebackOptions(pyr_scale, levels, winsize, iterations, poly_n, poly_sigma)

    def __call__(self, frames: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Warping error of each consecutive frame pair.

        Args:
            frames: (t, h, w, 3) uint8 RGB frames of one generated video.
            reference: (t, h, w, 3) uint8 frames of the ground-truth / driving video to take the
                flow and the occlusion mask from; ``None`` takes them from ``frames``.

        Returns:
            (t - 1,) float64: value ``i`` compares frame ``i + 1`` with frame ``i`` warped to it;
            NaN where no pixel is visible in both frames. A single frame gives an empty array.
        """
        frames = check_image_batch(frames, "frames")
        if reference is None:
            reference = frames
        else:
            reference = check_image_batch(reference, "reference")
            if reference.shape != frames.shape:
                raise ValueError(
                    f"reference {reference.shape} must have the shape of frames {frames.shape} (same length and size)"
                )
        gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in reference]
        values = np.empty(max(len(frames) - 1, 0), dtype=np.float64)  # (t - 1,)
        for t in range(1, len(frames)):
            backward = optical_flow(gray[t], gray[t - 1], self.flow_options)  # frame t -> t - 1
            forward = optical_flow(gray[t - 1], gray[t], self.flow_options)  # frame t - 1 -> t
            visible = visible_mask(backward, forward, self.use_motion_boundaries)
            values[t - 1] = warping_error(frames[t - 1], frames[t], backward, visible)
        return values
