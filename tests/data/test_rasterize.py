"""Landmark rasterisers on real mediapipe landmarks: shapes, geometry, colours, scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fake_dataset import DEFAULT_CLIPS, cropped_clip, require_real_data

from talkinghead.data.rasterize import (
    IBUG68_PARTS,
    RASTERIZERS,
    dense_connections,
    line_thickness,
    mediapipe_connections,
    part_segments,
    rasterize_landmarks,
    rasterize_landmarks_tensor,
)

SOURCE_SIZE = 64


@pytest.fixture(scope="module")
def landmarks() -> tuple[np.ndarray, np.ndarray]:
    """((68, 2) iBUG, (478, 3) mesh) of a real frame, in 64 px crop coordinates."""
    require_real_data()
    _frames, ibug, dense, _facts = cropped_clip(DEFAULT_CLIPS[2], SOURCE_SIZE)
    return ibug[0], dense[0]


def segment_distance(pixels: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """(P,) distance of each pixel centre (P, 2) to the nearest segment of (E, 2, 2)."""
    a, b = segments[:, 0], segments[:, 1]  # (E, 2)
    ab = b - a
    length2 = np.maximum((ab**2).sum(axis=1), 1e-12)  # (E,)
    t = np.clip(((pixels[:, None] - a[None]) * ab[None]).sum(axis=2) / length2, 0.0, 1.0)  # (P, E)
    nearest = a[None] + t[..., None] * ab[None]  # (P, E, 2)
    return np.linalg.norm(pixels[:, None] - nearest, axis=2).min(axis=1)


def drawn_pixels(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(P, 2) x, y of the non-black pixels (or of ``mask``)."""
    mask = image.max(axis=2) > 0 if mask is None else mask
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], axis=1).astype(np.float64)


def segments_of(points: np.ndarray, edges: np.ndarray, scale: float) -> np.ndarray:
    """(E, 2, 2) end points of ``edges`` scaled to the output."""
    return points[edges][..., :2].astype(np.float64) * scale


ALL_IBUG_EDGES = np.concatenate([part_segments(part) for part in IBUG68_PARTS])


@pytest.mark.parametrize("style", ["fsth", "dense"])
@pytest.mark.parametrize("size", [32, 64, 200])
def test_output_shape_dtype_and_tensor_range(landmarks, style, size):
    ibug, dense = landmarks
    points = ibug if style == "fsth" else dense
    image = rasterize_landmarks(points, size, style, source_size=SOURCE_SIZE)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert 0 < (image.max(axis=2) > 0).mean() < 0.5  # lines on a black background

    tensor = rasterize_landmarks_tensor(points, size, style, source_size=SOURCE_SIZE)
    assert tensor.shape == (3, size, size) and tensor.dtype == torch.float32
    assert tensor.min() == -1.0 and tensor.max() <= 1.0
    expected = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(tensor, expected, atol=1e-6)


def test_fsth_pixels_lie_on_the_part_segments(landmarks):
    ibug, _ = landmarks
    size = 128
    scale = size / SOURCE_SIZE
    image = rasterize_landmarks(ibug, size, "fsth", source_size=SOURCE_SIZE)
    segments = segments_of(ibug, ALL_IBUG_EDGES, scale)
    distance = segment_distance(drawn_pixels(image), segments)
    assert distance.max() <= line_thickness(size) / 2 + 1.5
    # Every segment is drawn: the pixel at its midpoint is lit.
    for (x, y) in np.round(segments.mean(axis=1)).astype(int):
        assert image[y - 1 : y + 2, x - 1 : x + 2].max() > 0


def test_each_fsth_part_has_its_own_colour(landmarks):
    ibug, _ = landmarks
    size = 256
    scale = size / SOURCE_SIZE
    image = rasterize_landmarks(ibug, size, "fsth", source_size=SOURCE_SIZE)
    colours = {part.color for part in IBUG68_PARTS}
    assert len(colours) == len(IBUG68_PARTS)
    for part in IBUG68_PARTS:
        exact = (image == np.array(part.color, dtype=np.uint8)).all(axis=2)
        assert exact.sum() > 5, f"{part.name}: its colour {part.color} is not drawn"
        distance = segment_distance(drawn_pixels(image, exact), segments_of(ibug, part_segments(part), scale))
        assert distance.max() <= line_thickness(size) / 2 + 1.5, f"{part.name}: its colour appears off the part"


def test_dense_mesh_pixels_lie_on_connections_with_one_colour_each(landmarks):
    _, dense = landmarks
    size = 128
    connections = dense_connections(478)
    assert len(connections.edges) == sum(len(e) for e in mediapipe_connections().values())
    assert len({tuple(c) for c in connections.colors.tolist()}) == len(connections.edges)
    image = rasterize_landmarks(dense, size, "dense", source_size=SOURCE_SIZE)
    distance = segment_distance(drawn_pixels(image), segments_of(dense, connections.edges, size / SOURCE_SIZE))
    assert distance.max() <= line_thickness(size) / 2 + 1.5
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100  # many connection colours


def test_dense_regions_are_walked_along_their_chains():
    for name, edges in mediapipe_connections().items():
        shared = [len(set(a) & set(b)) > 0 for a, b in zip(edges[:-1].tolist(), edges[1:].tolist())]
        # Consecutive connections share a point except where the walk jumps to a new chain.
        assert np.mean(shared) > 0.85, name
    assert not mediapipe_connections()["lips"].flags.writeable


def test_dense_68_point_fallback_colours_each_segment(landmarks):
    ibug, _ = landmarks
    connections = dense_connections(68)
    assert len(connections.edges) == len(ALL_IBUG_EDGES)
    assert len({tuple(c) for c in connections.colors.tolist()}) == len(ALL_IBUG_EDGES)
    image = rasterize_landmarks(ibug, 128, "dense", source_size=SOURCE_SIZE)
    distance = segment_distance(drawn_pixels(image), segments_of(ibug, ALL_IBUG_EDGES, 2.0))
    assert distance.max() <= line_thickness(128) / 2 + 1.5


@pytest.mark.parametrize("style", ["fsth", "dense"])
def test_source_size_scales_points(landmarks, style):
    ibug, dense = landmarks
    points = ibug if style == "fsth" else dense
    for size in (128, 96):  # factors 2 and 1.5 are exact in floating point
        factor = size / SOURCE_SIZE
        scaled = rasterize_landmarks(points, size, style, source_size=SOURCE_SIZE)
        direct = rasterize_landmarks(points * factor, size, style)
        np.testing.assert_array_equal(scaled, direct)
    assert (rasterize_landmarks(points, 64, style, source_size=64) == rasterize_landmarks(points, 64, style)).all()


def test_missing_landmarks_leave_out_their_segments(landmarks):
    ibug, _ = landmarks
    broken = ibug.copy()
    broken[8] = np.nan  # the chin
    image = rasterize_landmarks(broken, 128, "fsth", source_size=SOURCE_SIZE)
    full = rasterize_landmarks(ibug, 128, "fsth", source_size=SOURCE_SIZE)
    chin = np.round(ibug[8] * 2).astype(int)
    assert image[chin[1] - 1 : chin[1] + 2, chin[0] - 1 : chin[0] + 2].max() == 0
    assert full[chin[1] - 1 : chin[1] + 2, chin[0] - 1 : chin[0] + 2].max() > 0
    eyes = slice(70, 100)
    np.testing.assert_array_equal(image[eyes], full[eyes])  # the rest is untouched


def test_registry_and_errors(landmarks):
    ibug, dense = landmarks
    assert set(RASTERIZERS) == {"fsth", "dense", "dense_mesh"}
    assert RASTERIZERS["fsth"].landmarks == "ibug68" and RASTERIZERS["dense"].landmarks == "dense"
    assert RASTERIZERS["dense_mesh"].landmarks == "dense"
    np.testing.assert_array_equal(RASTERIZERS["fsth"](ibug, 64), rasterize_landmarks(ibug, 64, "fsth"))
    with pytest.raises(ValueError, match="unknown landmark style 'mesh'"):
        rasterize_landmarks(ibug, 64, "mesh")
    with pytest.raises(ValueError, match="68 iBUG landmarks"):
        rasterize_landmarks(dense, 64, "fsth")
    with pytest.raises(ValueError, match="478-point"):
        rasterize_landmarks(dense[:100], 64, "dense")
    with pytest.raises(ValueError, match=r"\(N, 2\) or \(N, 3\)"):
        rasterize_landmarks(ibug[:, :1], 64, "fsth")
