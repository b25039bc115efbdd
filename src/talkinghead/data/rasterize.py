"""Landmark rasterisers: face landmarks drawn as the generator's three-channel input image.

Two styles, both drawn with anti-aliased OpenCV lines on black, line width growing with
the output resolution (:func:`line_thickness`):

``fsth``
    FSTH §3.1: "landmarks are rasterized into three-channel images using a predefined set
    of colors to connect certain landmarks with line segments". The iBUG-68 points are
    grouped into nine parts (jaw, brows, nose bridge, nose base, eyes, outer and inner
    lips; :data:`IBUG68_PARTS`), each drawn as one polyline in its own fixed colour.
``dense``
    MetaPortrait §3.1: "We draw the neighboring connected landmark points, with each
    connection encoded in different colors". For 478-point mediapipe meshes the
    connections are mediapipe's face-mesh contour sets (lips, eyes, brows, irises, face
    oval, nose); for 68-point arrays they are the segments of the iBUG parts. Every
    connection gets its own hue; connections are ordered region by region and, inside a
    region, along its chains, so a region occupies one band of hues that varies smoothly
    along its curves.

Points are ``(N, 2)`` or ``(N, 3)`` arrays (``z`` is ignored) in the pixel coordinates of
a ``source_size`` square image, scaled to the output ``size``. Segments with a non-finite
endpoint (a landmark that was not found) are left out of the picture.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass
from typing import Callable, Literal

import cv2
import numpy as np
import torch

from talkinghead.config.landmark_styles import LandmarkStyle
from talkinghead.data.landmarks import ibug68
from talkinghead.data.mesh_fields import mesh_fields
from talkinghead.errors import MissingDependencyError

RasterStyle = LandmarkStyle

# Coordinates are passed to OpenCV as fixed-point integers with this many fractional
# bits, so anti-aliased lines start and end at sub-pixel positions.
_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class LandmarkPart:
    """A facial part of the iBUG-68 layout drawn as one polyline.

    Args:
        name: part name from :data:`talkinghead.data.landmarks.ibug68.PARTS` (``right``
            and ``left`` are the subject's).
        indices: landmark indices along the polyline.
        closed: whether the last point connects back to the first.
        color: RGB colour of the part in the ``fsth`` style.
    """

    name: str
    indices: tuple[int, ...]
    closed: bool
    color: tuple[int, int, int]


# The FSTH style's "predefined set of colors", one per iBUG part (RGB). Left and right
# parts differ so that the generator can tell the two sides of the face apart.
FSTH_COLORS: dict[str, tuple[int, int, int]] = {
    "jaw": (255, 255, 255),
    "right_brow": (255, 128, 0),
    "left_brow": (255, 255, 0),
    "nose_bridge": (0, 0, 255),
    "nose_base": (0, 160, 255),
    "right_eye": (255, 0, 0),
    "left_eye": (0, 255, 0),
    "outer_lips": (255, 0, 255),
    "inner_lips": (0, 255, 255),
}

IBUG68_PARTS: tuple[LandmarkPart, ...] = tuple(
    LandmarkPart(name, tuple(range(first, stop)), closed, FSTH_COLORS[name])
    for name, (first, stop, closed) in ibug68.PARTS.items()
)

NUM_IBUG68 = 68
NUM_MEDIAPIPE = 478

# Region name -> attribute of ``mediapipe.python.solutions.face_mesh_connections``, in
# the order the regions take their hue bands in the ``dense`` style.
MEDIAPIPE_REGIONS: dict[str, str] = {
    "lips": "FACEMESH_LIPS",
    "right_eye": "FACEMESH_RIGHT_EYE",
    "left_eye": "FACEMESH_LEFT_EYE",
    "right_brow": "FACEMESH_RIGHT_EYEBROW",
    "left_brow": "FACEMESH_LEFT_EYEBROW",
    "right_iris": "FACEMESH_RIGHT_IRIS",
    "left_iris": "FACEMESH_LEFT_IRIS",
    "face_oval": "FACEMESH_FACE_OVAL",
    "nose": "FACEMESH_NOSE",
}


def line_thickness(size: int) -> int:
    """Line width in pixels for an output of ``size`` pixels (1 px per 128 px, at least 1)."""
    return max(1, round(size / 128))


def part_segments(part: LandmarkPart) -> np.ndarray:
    """(E, 2) int64 index pairs of the consecutive segments of an iBUG part."""
    indices = np.asarray(part.indices, dtype=np.int64)
    ends = np.roll(indices, -1) if part.closed else indices[1:]
    starts = indices if part.closed else indices[:-1]
    return np.stack([starts, ends], axis=1)


def _chain_order(edges: set[tuple[int, int]]) -> np.ndarray:
    """(E, 2) edges ordered by a depth-first walk, so consecutive edges share a point.

    Walks start at the lowest-numbered end point of each chain (a point with one
    neighbour), or at the lowest-numbered point of a loop, which makes the order
    independent of the (unordered) set iteration order.
    """
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    for adjacent in neighbours.values():
        adjacent.sort()
    ends = sorted(p for p, adjacent in neighbours.items() if len(adjacent) == 1)
    starts = ends + sorted(neighbours)
    seen: set[frozenset[int]] = set()
    ordered: list[tuple[int, int]] = []
    for start in starts:
        path = [start]
        while path:
            point = path[-1]
            other = next((o for o in neighbours[point] if frozenset((point, o)) not in seen), None)
            if other is None:
                path.pop()  # every edge at this point is drawn: backtrack
                continue
            seen.add(frozenset((point, other)))
            ordered.append((point, other))
            path.append(other)
    return np.asarray(ordered, dtype=np.int64).reshape(-1, 2)


@functools.cache
def mediapipe_connections() -> dict[str, np.ndarray]:
    """Region name -> (E, 2) int64 read-only point-index pairs of the mediapipe face mesh.

    Imported lazily from mediapipe (only the ``dense`` style of 478-point meshes needs it)
    and cached for the life of the process.
    """
    try:
        from mediapipe.python.solutions import face_mesh_connections
    except ImportError as err:
        raise MissingDependencyError(
            "the dense rasteriser of 478-point meshes needs mediapipe's face-mesh "
            f"connection sets; install the pinned mediapipe (pip install -e .): {err}"
        ) from err
    regions = {}
    for region, attribute in MEDIAPIPE_REGIONS.items():
        edges = _chain_order(set(getattr(face_mesh_connections, attribute)))
        edges.setflags(write=False)
        regions[region] = edges
    return regions


def _hue_palette(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB colours of fully saturated hues evenly spaced around the circle."""
    colors = [colorsys.hsv_to_rgb(i / count, 1.0, 1.0) for i in range(count)]
    return np.round(np.asarray(colors, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)


@dataclass(frozen=True)
class ConnectionSet:
    """Connections of one landmark layout with one colour per connection.

    Args:
        edges: (E, 2) point-index pairs, grouped by region.
        colors: (E, 3) uint8 RGB colour per connection.
        regions: region name -> slice of ``edges`` that belongs to it.
        num_points: number of landmarks the indices refer to.
    """

    edges: np.ndarray
    colors: np.ndarray
    regions: dict[str, slice]
    num_points: int


def _connection_set(region_edges: dict[str, np.ndarray], num_points: int) -> ConnectionSet:
    regions, start = {}, 0
    for name, edges in region_edges.items():
        regions[name] = slice(start, start + len(edges))
        start += len(edges)
    edges = np.concatenate(list(region_edges.values()), axis=0)
    colors = _hue_palette(len(edges))
    edges.setflags(write=False)
    colors.setflags(write=False)
    return ConnectionSet(edges=edges, colors=colors, regions=regions, num_points=num_points)


@functools.cache
def dense_connections(num_points: int) -> ConnectionSet:
    """The coloured connections the ``dense`` style draws for ``num_points`` landmarks (478 or 68)."""
    if num_points == NUM_MEDIAPIPE:
        return _connection_set(mediapipe_connections(), num_points)
    if num_points == NUM_IBUG68:
        return _connection_set({part.name: part_segments(part) for part in IBUG68_PARTS}, num_points)
    raise ValueError(
        f"the dense rasteriser draws {NUM_MEDIAPIPE}-point mediapipe meshes or "
        f"{NUM_IBUG68}-point iBUG arrays, got {num_points} points"
    )


def _fixed_point(points: np.ndarray, size: int, source_size: int | None) -> np.ndarray:
    """(N, 2) int64 OpenCV fixed-point pixel coordinates of ``points`` at the output ``size``.

    Points are clipped to a band around the image so the fixed-point values fit int32;
    non-finite points become 0 (callers leave out their segments).
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"landmarks must be an (N, 2) or (N, 3) array, got shape {points.shape}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if source_size is not None and source_size < 1:
        raise ValueError(f"source_size must be a positive number of pixels, got {source_size}")
    xy = points[:, :2].astype(np.float64)  # (N, 2)
    if source_size is not None and source_size != size:
        xy = xy * (size / source_size)
    xy = np.where(np.isfinite(xy), xy, 0.0)
    xy = np.clip(xy, -4 * size, 5 * size) * _ONE
    return np.round(xy).astype(np.int64)


def _finite(points: np.ndarray) -> np.ndarray:
    """(N,) whether each landmark has finite x and y."""
    return np.isfinite(np.asarray(points)[:, :2]).all(axis=1)


def rasterize_fsth(points: np.ndarray, size: int, source_size: int | None = None) -> np.ndarray:
    """Draw 68 iBUG landmarks in the FSTH style: one fixed colour per facial part.

    Args:
        points: (68, 2) or (68, 3) landmarks in ``source_size`` pixel coordinates.
        size: side of the output square in pixels.
        source_size: side of the image the points refer to; None when it is ``size``.

    Returns:
        (size, size, 3) uint8 RGB image.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[0] != NUM_IBUG68:
        raise ValueError(
            f"the fsth rasteriser draws the {NUM_IBUG68} iBUG landmarks, got an array of shape "
            f"{points.shape}; use the dataset's landmarks68, or the dense style for other layouts"
        )
    fixed = _fixed_point(points, size, source_size)  # (68, 2)
    finite = _finite(points)  # (68,)
    thickness = line_thickness(size)
    image = np.zeros((size, size, 3), dtype=np.uint8)
    for part in IBUG68_PARTS:
        indices = np.asarray(part.indices)
        if finite[indices].all():
            polyline = fixed[indices].astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(image, [polyline], part.closed, part.color, thickness, cv2.LINE_AA, _SHIFT)
            continue
        for a, b in part_segments(part):
            if finite[a] and finite[b]:
                cv2.line(image, fixed[a].tolist(), fixed[b].tolist(), part.color, thickness, cv2.LINE_AA, _SHIFT)
    return image


def rasterize_dense(points: np.ndarray, size: int, source_size: int | None = None) -> np.ndarray:
    """Draw landmark connections in the MetaPortrait style: one colour per connection.

    Args:
        points: (478, 2|3) mediapipe mesh or (68, 2|3) iBUG landmarks, in ``source_size``
            pixel coordinates.
        size: side of the output square in pixels.
        source_size: side of the image the points refer to; None when it is ``size``.

    Returns:
        (size, size, 3) uint8 RGB image.
    """
    points = np.asarray(points)
    if points.ndim != 2:
        raise ValueError(f"landmarks must be an (N, 2) or (N, 3) array, got shape {points.shape}")
    connections = dense_connections(points.shape[0])
    fixed = _fixed_point(points, size, source_size).tolist()  # N x [x, y]
    finite = _finite(points).tolist()  # N
    thickness = line_thickness(size)
    image = np.zeros((size, size, 3), dtype=np.uint8)
    for (a, b), color in zip(connections.edges.tolist(), connections.colors.tolist()):
        if finite[a] and finite[b]:
            cv2.line(image, fixed[a], fixed[b], color, thickness, cv2.LINE_AA, _SHIFT)
    return image


def rasterize_dense_mesh(points: np.ndarray, size: int, source_size: int | None = None) -> np.ndarray:
    """The ``dense`` drawing of a 478-point mesh followed by its coordinate fields.

    Args:
        points: (478, 2|3) mediapipe points in ``source_size`` pixel coordinates.
        size: side of the output square in pixels.
        source_size: side of the image the points refer to; None when it is ``size``.

    Returns:
        (size, size, 7) float32 in [-1, 1]: the drawing (3), the forward field (2) and the
        inverse field (2); see :mod:`talkinghead.config.landmark_styles`.
    """
    drawing = rasterize_dense(points, size, source_size).astype(np.float32) * np.float32(1.0 / 127.5) - 1.0
    return np.concatenate([drawing, mesh_fields(points, size, source_size)], axis=2)


@dataclass(frozen=True)
class Rasterizer:
    """A named landmark rasteriser and the landmark array it draws.

    Args:
        name: registry name (the ``landmark_style`` option).
        draw: ``draw(points, size, source_size) -> (size, size, 3) uint8`` for drawings, or
            ``(size, size, C) float32`` in [-1, 1] for representations with fields.
        landmarks: which array of a clip's ``landmarks.npz`` it draws: ``ibug68`` or ``dense``.
    """

    name: str
    draw: Callable[[np.ndarray, int, int | None], np.ndarray]
    landmarks: Literal["ibug68", "dense"]

    def __call__(self, points: np.ndarray, size: int, source_size: int | None = None) -> np.ndarray:
        return self.draw(points, size, source_size)


RASTERIZERS: dict[str, Rasterizer] = {
    "fsth": Rasterizer("fsth", rasterize_fsth, "ibug68"),
    "dense": Rasterizer("dense", rasterize_dense, "dense"),
    "dense_mesh": Rasterizer("dense_mesh", rasterize_dense_mesh, "dense"),
}


def get_rasterizer(style: str) -> Rasterizer:
    """The registered rasteriser called ``style``."""
    try:
        return RASTERIZERS[style]
    except KeyError:
        raise ValueError(f"unknown landmark style {style!r}; choose one of {sorted(RASTERIZERS)}") from None


def rasterize_landmarks(
    points: np.ndarray,
    size: int,
    style: RasterStyle,
    source_size: int | None = None,
) -> np.ndarray:
    """Draw landmarks as a (size, size, 3) uint8 RGB image in the named style (``dense_mesh``:
    (size, size, 7) float32 in [-1, 1], the drawing and the mesh's coordinate fields).

    Args:
        points: (N, 2) or (N, 3) landmarks in ``source_size`` pixel coordinates
            (68 iBUG points for ``fsth``; 478 mediapipe or 68 iBUG points for ``dense``).
        size: side of the output square in pixels.
        style: the model's ``landmark_style``: ``fsth`` (one colour per facial part), ``dense``
            (one per connection) or ``dense_mesh``.
        source_size: side of the square image the points refer to; None when it is ``size``.
    """
    return get_rasterizer(style)(points, size, source_size)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(..., H, W, C) pictures to (..., C, H, W) float32 in [-1, 1].

    uint8 pictures (frames, landmark drawings) are scaled from 0..255; float32 arrays (landmark
    representations with coordinate fields) are already in [-1, 1] and only move their channels.
    """
    if image.dtype not in (np.uint8, np.float32) or image.ndim < 3:
        raise ValueError(f"expected (..., H, W, C) uint8 images or float32 arrays, got {image.dtype} of shape {image.shape}")
    channels_first = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, -3)))  # (..., C, H, W)
    if image.dtype == np.float32:
        return channels_first
    return channels_first.to(torch.float32).mul_(1.0 / 127.5).sub_(1.0)


def rasterize_landmarks_tensor(
    points: np.ndarray,
    size: int,
    style: RasterStyle,
    source_size: int | None = None,
) -> torch.Tensor:
    """Like :func:`rasterize_landmarks`, as a (C, size, size) float32 tensor in [-1, 1]."""
    return image_to_tensor(rasterize_landmarks(points, size, style, source_size))
