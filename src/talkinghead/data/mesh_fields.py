"""Coordinate fields of the face mesh: a dense correspondence between any face and a canonical one.

The 478 mediapipe points of a frame, plus fixed anchors along the image border, are
triangulated once in the canonical mesh (:data:`CANONICAL_MESH`, the median face of the
shared videos). The same triangles, placed on a frame's points, cut the frame into pieces
that each map affinely onto their canonical triangle. Two fields follow:

* the **forward field** ``U``: for each pixel of the frame, the canonical position of the face
  point seen there (triangles are filled far to near by the mesh's depth, so where the
  face folds over itself in a turned head the visible surface wins);
* the **inverse field** ``G``: for each pixel of the canonical square, where that face point
  lies in the frame.

``G_source(U_driving(p))`` is then where driving pixel ``p`` is found in the source: the
classical piecewise-affine landmark warp, written as two images a network can read and
``grid_sample`` can compose. The border anchors are at the same place in every frame, so
the background far from the face stays put, as in the ``landmark-warp`` reference.

Positions are fractions of the square's side (``x`` right, ``y`` down) internally and
normalised to [-1, 1] (``2 * fraction - 1``, pixel centres at ``(i + 0.5) / size``, the
``align_corners=False`` convention) in the fields.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.data.landmarks.canonical_mesh import CANONICAL_MESH

# Anchor points per image side (corners included): they hold the background in place.
ANCHORS_PER_SIDE = 5
# OpenCV fixed-point fraction bits for sub-pixel triangle corners.
_SHIFT = 4
# A pixel whose smallest barycentric weight in its triangle is below minus this lies well outside it.
STRAY_WEIGHT = 0.25


def border_anchors(per_side: int = ANCHORS_PER_SIDE) -> np.ndarray:
    """(4 * (per_side - 1), 2) fractions evenly spaced around the border of the unit square."""
    steps = np.linspace(0.0, 1.0, per_side)[:-1]
    top = np.stack([steps, np.zeros_like(steps)], 1)
    right = np.stack([np.ones_like(steps), steps], 1)
    bottom = np.stack([1.0 - steps, np.ones_like(steps)], 1)
    left = np.stack([np.zeros_like(steps), 1.0 - steps], 1)
    return np.concatenate([top, right, bottom, left])


@dataclass(frozen=True)
class MeshTriangulation:
    """The canonical mesh and its triangles.

    Args:
        canonical: (M, 2) fractions: the 478 canonical points, then the border anchors.
        triangles: (T, 3) vertex indices into ``canonical`` (a Delaunay triangulation of it).
        anchored: (T,) whether the triangle has a border anchor (drawn first, behind the face).
        num_points: number of face points (478); the anchors follow them.
    """

    canonical: np.ndarray
    triangles: np.ndarray
    anchored: np.ndarray
    num_points: int


@functools.cache
def triangulation() -> MeshTriangulation:
    """The canonical triangulation, computed once per process."""
    from scipy.spatial import Delaunay

    face = np.asarray(CANONICAL_MESH, dtype=np.float64)
    canonical = np.concatenate([face, border_anchors()])
    triangles = Delaunay(canonical).simplices.astype(np.int64)
    anchored = (triangles >= len(face)).any(axis=1)
    for array in (canonical, triangles, anchored):
        array.setflags(write=False)
    return MeshTriangulation(canonical=canonical, triangles=triangles, anchored=anchored, num_points=len(face))


def _barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(n, 3) barycentric weights of (n, 2) points in the (n, 3, 2) triangles holding them.

    Degenerate (zero-area) triangles give all weight to their first corner.
    """
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    e1, e2, d = b - a, c - a, points - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    safe = np.abs(det) > 1e-12
    det = np.where(safe, det, 1.0)
    u = np.where(safe, (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / det, 0.0)
    v = np.where(safe, (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / det, 0.0)
    return np.stack([1.0 - u - v, u, v], axis=1)


@functools.cache
def _pixel_centres(size: int) -> np.ndarray:
    """(size * size, 2) fractions of the pixel centres, row by row (read-only, made once per size)."""
    centres = (np.arange(size, dtype=np.float64) + 0.5) / size
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    grid.setflags(write=False)
    return grid


def _triangle_index_map(vertices: np.ndarray, triangles: np.ndarray, order: np.ndarray, size: int) -> np.ndarray:
    """(size, size) int32 index of the triangle covering each pixel centre (-1: none).

    ``vertices`` are fractions; triangles are filled in ``order``, later ones on top.
    """
    fixed = np.round((vertices * size - 0.5) * (1 << _SHIFT)).astype(np.int64)
    fixed = np.clip(fixed, -(1 << 24), 1 << 24).astype(np.int32)
    index = np.full((size, size), -1, dtype=np.int32)
    for t in order.tolist():
        cv2.fillConvexPoly(index, fixed[triangles[t]], int(t), cv2.LINE_8, _SHIFT)
    return index


@functools.cache
def _canonical_weights(size: int) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel of the canonical square: its triangle's (n, 3) vertex indices and barycentric weights."""
    mesh = triangulation()
    index = _triangle_index_map(mesh.canonical, mesh.triangles, np.arange(len(mesh.triangles)), size).ravel()
    centres = _pixel_centres(size)
    # pixel centres on the very border can miss every triangle by rounding: take the nearest one's
    missing = index < 0
    if missing.any():
        middles = mesh.canonical[mesh.triangles].mean(axis=1)  # (T, 2)
        nearest = ((centres[missing, None] - middles[None]) ** 2).sum(-1).argmin(1)
        index[missing] = nearest
    vertices = mesh.triangles[index]  # (n, 3)
    weights = _barycentric(centres, mesh.canonical[vertices])
    vertices.setflags(write=False)
    weights.setflags(write=False)
    return vertices, weights


@functools.cache
def _inverse_operator(size: int):
    """The inverse field as one fixed sparse (size * size, M) matrix: three barycentric weights a row.

    ``operator @ vertices`` places the canonical square's triangles on a frame's (M, 2)
    points: the same products and sums as weighting the corners pixel by pixel, in one call.
    """
    from scipy.sparse import csr_matrix

    corners, weights = _canonical_weights(size)
    rows = np.repeat(np.arange(len(corners)), 3)
    return csr_matrix((weights.ravel(), (rows, corners.ravel())), shape=(len(corners), len(triangulation().canonical)))


def _barycentric_coefficients(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T, 2, 3) per triangle: ``u`` and ``v`` of :func:`_barycentric` as affine functions ``c . (x, y, 1)``.

    Solved once per triangle instead of once per pixel; degenerate triangles get zeros
    (all weight on their first corner, as in :func:`_barycentric`).
    """
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    e1, e2 = b - a, c - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    safe = np.abs(det) > 1e-12
    inv = np.where(safe, 1.0 / np.where(safe, det, 1.0), 0.0)
    # u = (d_x e2_y - d_y e2_x) / det and v = (e1_x d_y - e1_y d_x) / det with d = p - a
    u = np.stack([e2[:, 1] * inv, -e2[:, 0] * inv], axis=1)  # (T, 2)
    v = np.stack([-e1[:, 1] * inv, e1[:, 0] * inv], axis=1)
    coefficients = np.empty((len(triangles), 2, 3))
    for row, linear in enumerate((u, v)):
        coefficients[:, row, :2] = linear
        coefficients[:, row, 2] = -(linear * a).sum(axis=1)
    return coefficients


def fill_from_neighbours(field: np.ndarray, holes: np.ndarray, max_rounds: int = 8) -> np.ndarray:
    """(h, w, c) ``field`` with its ``holes`` (h, w) replaced by the mean of their known 3 x 3 neighbours.

    Repeated so that holes several pixels wide fill from their rim inwards; a hole with no
    known pixel within ``max_rounds`` keeps its value.
    """
    if not holes.any():
        return field
    field = field.copy()
    known = (~holes).astype(np.float64)
    for _ in range(max_rounds):
        total = cv2.boxFilter(field * known[..., None], -1, (3, 3), normalize=False, borderType=cv2.BORDER_REPLICATE)
        count = cv2.boxFilter(known, -1, (3, 3), normalize=False, borderType=cv2.BORDER_REPLICATE)
        fill = (known == 0) & (count > 0)
        if not fill.any():
            break
        total = total.reshape(field.shape)
        field[fill] = total[fill] / count[fill][:, None]
        known[fill] = 1.0
    return field


def frame_vertices(points: np.ndarray, source_size: int) -> np.ndarray:
    """(M, 2) fractions: the frame's 478 points (missing ones at their canonical place), then the anchors."""
    mesh = triangulation()
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] != mesh.num_points or points.shape[1] not in (2, 3):
        raise ValueError(f"the mesh fields need ({mesh.num_points}, 2|3) mediapipe points, got shape {points.shape}")
    if source_size < 1:
        raise ValueError(f"source_size must be a positive number of pixels, got {source_size}")
    xy = points[:, :2] / source_size
    finite = np.isfinite(xy).all(axis=1)
    xy = np.where(finite[:, None], xy, mesh.canonical[: mesh.num_points])
    return np.concatenate([xy, mesh.canonical[mesh.num_points:]])


def draw_order(points: np.ndarray) -> np.ndarray:
    """Triangle indices far to near: anchored triangles first, then face ones by decreasing depth.

    Mediapipe's ``z`` grows away from the camera; without ``z`` the face triangles keep
    their triangulation order.
    """
    mesh = triangulation()
    face = np.flatnonzero(~mesh.anchored)
    if points.shape[1] == 3 and np.isfinite(points[:, 2]).all():
        depth = points[:, 2][mesh.triangles[face]].mean(axis=1)
        face = face[np.argsort(-depth, kind="stable")]
    return np.concatenate([np.flatnonzero(mesh.anchored), face])


def mesh_fields(points: np.ndarray, size: int, source_size: int | None = None) -> np.ndarray:
    """The forward and inverse fields of one frame's mesh.

    Args:
        points: (478, 2|3) mediapipe points in ``source_size`` pixels (``z`` orders folds).
        size: side of the fields in pixels.
        source_size: side of the image the points refer to; None when it is ``size``.

    Returns:
        (size, size, 4) float32 in normalised coordinates: forward field ``U`` (x, y), then
        inverse field ``G`` (x, y).
    """
    mesh = triangulation()
    points = np.asarray(points)
    vertices = frame_vertices(points, source_size or size)  # (M, 2) fractions
    # forward: which triangle covers each pixel of the frame, and where that is on the canonical mesh
    index = _triangle_index_map(vertices, mesh.triangles, draw_order(points), size).ravel()
    centres = _pixel_centres(size)
    forward = centres.copy()  # uncovered pixels (outside every triangle) map to themselves
    covered = index >= 0
    triangle = index[covered]  # (n,)
    # barycentric (u, v) of each covered pixel from its triangle's affine coefficients
    coefficients = _barycentric_coefficients(vertices, mesh.triangles)[triangle]  # (n, 2, 3)
    xy = centres[covered]
    uv = coefficients[:, :, 0] * xy[:, :1] + coefficients[:, :, 1] * xy[:, 1:] + coefficients[:, :, 2]  # (n, 2)
    raw = np.concatenate([1.0 - uv.sum(axis=1, keepdims=True), uv], axis=1)  # (n, 3)
    corners = mesh.canonical[mesh.triangles[triangle]]  # (n, 3, 2)
    forward[covered] = (raw[:, :, None] * corners).sum(axis=1)
    # The rasteriser marks a pixel for a triangle it touches even when the pixel's centre lies
    # outside it. For a sliver (a lip outline squeezed under a pixel of area when the mouth
    # opens, a fold in a turned head) the weights extrapolate to the hundreds and the pixel's
    # canonical position lands far across the face: an isolated dark or white dot in the
    # warped frame. Such stray pixels take their neighbours' positions instead.
    stray = np.zeros(size * size, dtype=bool)
    stray[np.flatnonzero(covered)[raw.min(axis=1) < -STRAY_WEIGHT]] = True
    forward = fill_from_neighbours(forward.reshape(size, size, 2), stray.reshape(size, size)).reshape(-1, 2)
    # inverse: the canonical square's fixed triangles and weights, placed on this frame's points
    inverse = _inverse_operator(size) @ vertices
    fields = np.concatenate([forward, inverse], axis=1).reshape(size, size, 4)
    return (fields * 2.0 - 1.0).astype(np.float32)
