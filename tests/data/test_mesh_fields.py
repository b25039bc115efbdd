"""The face mesh's coordinate fields (``dense_mesh`` landmark style) on real frames."""

from __future__ import annotations

import numpy as np
import torch

from talkinghead.data.mesh_fields import mesh_fields, triangulation
from talkinghead.data.rasterize import get_rasterizer, image_to_tensor, rasterize_dense
from talkinghead.models.warping import correspondence_flow

SIZE = 64


def real_points(dataset) -> np.ndarray:
    """(478, 3) mediapipe points of a real prepared frame, in its 64 px crop."""
    path = sorted(dataset.glob("clips/**/landmarks.npz"))[0]
    with np.load(path) as data:
        return data["dense"][0].astype(np.float64)


def flow_px(source_points: np.ndarray, driving_points: np.ndarray) -> torch.Tensor:
    """(2, s, s) correspondence flow in pixels from two frames' fields."""
    source = image_to_tensor(mesh_fields(source_points, SIZE))[None]
    driving = image_to_tensor(mesh_fields(driving_points, SIZE))[None]
    return correspondence_flow(source[:, 2:4], driving[:, 0:2])[0] * SIZE / 2


def test_a_frame_corresponds_to_itself(prepared_dataset):
    points = real_points(prepared_dataset)
    flow = flow_px(points, points)
    assert flow.abs().mean() < 0.05  # folds of a turned head may differ by a pixel, the rest is exact
    assert np.median(flow.abs().numpy()) < 1e-3


def test_moving_the_face_moves_the_correspondence_and_holds_the_background(prepared_dataset):
    points = real_points(prepared_dataset)
    moved = points.copy()
    moved[:, :2] += (3.0, -2.0)  # the driving face is 3 px right and 2 px up of the source's
    flow = flow_px(points, moved)
    left, top = np.round(moved[[33, 263], :2].min(axis=0)).astype(int)  # between the eyes and the mouth
    right, bottom = np.round(moved[[263, 13], :2].max(axis=0)).astype(int)
    face = flow[:, top:bottom, left:right].flatten(1)
    torch.testing.assert_close(face.median(dim=1).values, torch.tensor([-3.0, 2.0]), atol=0.02, rtol=0)
    assert flow[:, :2, :2].abs().max() < 0.05 and flow[:, -2:, -2:].abs().max() < 0.05  # image corners stay


def test_the_inverse_field_puts_canonical_points_where_the_frame_has_them(prepared_dataset):
    points = real_points(prepared_dataset)
    inverse = image_to_tensor(mesh_fields(points, 256, source_size=SIZE))[2:4]  # fine grid: little interpolation
    canonical = triangulation().canonical[:478]
    for k in (1, 33, 263, 13, 152):  # nose tip, eye corners, upper lip, chin
        column, row = np.clip(np.round(canonical[k] * 256 - 0.5).astype(int), 0, 255)
        found = (inverse[:, row, column].numpy() + 1) / 2 * SIZE
        assert np.abs(found - points[k, :2]).max() < 0.6, k


def test_dense_mesh_images_are_the_drawing_then_the_fields(prepared_dataset):
    points = real_points(prepared_dataset)
    image = get_rasterizer("dense_mesh")(points, SIZE)
    assert image.shape == (SIZE, SIZE, 7) and image.dtype == np.float32
    assert image.min() >= -1 and image.max() <= 1
    tensor = image_to_tensor(image)
    torch.testing.assert_close(tensor[:3], image_to_tensor(rasterize_dense(points, SIZE)))
    torch.testing.assert_close(tensor[3:], image_to_tensor(mesh_fields(points, SIZE)))


def test_fast_fields_equal_the_per_pixel_barycentric_fields():
    """The per-triangle coefficients and the sparse inverse give the per-pixel formulas' fields, bit for bit."""
    from talkinghead.data import mesh_fields as fields

    mesh = fields.triangulation()
    rng = np.random.default_rng(0)
    for _ in range(5):
        scale = rng.uniform(0.7, 1.2)
        points = np.concatenate([mesh.canonical[: mesh.num_points] * 96 * scale + rng.normal(0, 2, (mesh.num_points, 2)),
                                 rng.normal(0, 1, (mesh.num_points, 1))], axis=1)
        vertices = fields.frame_vertices(points, 96)
        index = fields._triangle_index_map(vertices, mesh.triangles, fields.draw_order(points), 96).ravel()
        centres = fields._pixel_centres(96)
        forward, covered = centres.copy(), index >= 0
        corners = mesh.triangles[index[covered]]
        weights = fields._barycentric(centres[covered], vertices[corners])
        forward[covered] = (weights[:, :, None] * mesh.canonical[corners]).sum(axis=1)
        stray = np.zeros(96 * 96, dtype=bool)  # pixels well outside their triangle take their neighbours'
        stray[np.flatnonzero(covered)[weights.min(axis=1) < -fields.STRAY_WEIGHT]] = True
        forward = fields.fill_from_neighbours(forward.reshape(96, 96, 2), stray.reshape(96, 96)).reshape(-1, 2)
        canonical_corners, canonical_weights = fields._canonical_weights(96)
        inverse = (canonical_weights[:, :, None] * vertices[canonical_corners]).sum(axis=1)
        expected = (np.concatenate([forward, inverse], axis=1).reshape(96, 96, 4) * 2.0 - 1.0).astype(np.float32)
        np.testing.assert_array_equal(fields.mesh_fields(points, 96), expected)
