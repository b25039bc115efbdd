"""dlib's face chip in torch: same pixels as dlib.get_face_chip, batched, differentiable."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from talkinghead.models.face_chip import extract_face_chips, face_chip_geometry, fit_similarity

from dlib_faces import SHARED, dlib_tools, video_frames


def _face(image: np.ndarray, points: int = 5):
    dlib = pytest.importorskip("dlib")
    models = pytest.importorskip("face_recognition_models")
    detector, five, _ = dlib_tools()
    predictor = five if points == 5 else dlib.shape_predictor(models.pose_predictor_model_location())
    rects = detector(image, 1)
    assert rects, "no face in the test image"
    return predictor(image, max(rects, key=lambda r: r.area()))


def _points(shape) -> torch.Tensor:
    return torch.tensor([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=torch.float32)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float()  # (1, 3, h, w)


@pytest.fixture(scope="module")
def frames():
    path = SHARED / "real" / "liveportrait_d19.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    # Half size: the face (about 160 px) is under twice the chip, so dlib samples it directly.
    return [np.ascontiguousarray(cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
            for f in video_frames(path, 2)]


def test_fit_similarity_recovers_a_known_transform():
    source = torch.rand(3, 7, 2, dtype=torch.float64) * 100
    angle, scale, shift = torch.tensor([0.3, -1.0, 2.5]), torch.tensor([0.5, 1.0, 3.0]), torch.rand(3, 2) * 50
    rotation = torch.stack([torch.stack([angle.cos(), -angle.sin()], -1), torch.stack([angle.sin(), angle.cos()], -1)], -2)
    m_true = (scale[:, None, None] * rotation).double()
    target = source @ m_true.transpose(1, 2) + shift[:, None].double()
    m, t = fit_similarity(source, target)
    torch.testing.assert_close(m, m_true)
    torch.testing.assert_close(t, shift.double())


def test_chip_matches_dlib_get_face_chip(frames):
    dlib = pytest.importorskip("dlib")
    image = frames[0]
    shape = _face(image)
    ours = extract_face_chips(_tensor(image), _points(shape)[None])[0].permute(1, 2, 0).numpy()
    theirs = dlib.get_face_chip(image, shape, size=150, padding=0.25).astype(np.float64)
    # dlib rounds to uint8; a face under twice the chip's size is sampled without a pyramid.
    center, angle, side = face_chip_geometry(_points(shape)[None])
    assert side.item() < 300
    assert np.abs(ours - theirs).mean() < 1.0


def test_large_faces_are_low_pass_filtered_first(frames):
    dlib = pytest.importorskip("dlib")
    image = np.ascontiguousarray(cv2.resize(frames[0], None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC))
    shape = _face(image)
    theirs = dlib.get_face_chip(image, shape, size=150, padding=0.25).astype(np.float64)
    points = _points(shape)[None]
    with_pyramid = extract_face_chips(_tensor(image), points, uint8_levels=True)[0].permute(1, 2, 0).numpy()
    without = extract_face_chips(_tensor(image), points, antialias=False)[0].permute(1, 2, 0).numpy()
    # dlib's pyramid, its rounding and its point mapping: the same pixels up to dlib's final rounding.
    assert np.abs(with_pyramid - theirs).mean() < 1.0 < np.abs(without - theirs).mean()


def test_batched_chips_equal_single_ones_and_68_points_align_like_5(frames):
    shapes = [_face(f) for f in frames]
    images = torch.cat([_tensor(f) for f in frames])
    points = torch.stack([_points(s) for s in shapes])
    batch = extract_face_chips(images, points)
    for i in range(len(frames)):
        torch.testing.assert_close(batch[i], extract_face_chips(images[i:i + 1], points[i:i + 1])[0])
    # The iBUG-68 eye corners and nose base give nearly the five-point predictor's chip.
    shape68 = _face(frames[0], points=68)
    c5, a5, s5 = face_chip_geometry(points[:1])
    c68, a68, s68 = face_chip_geometry(_points(shape68)[None])
    assert (c5 - c68).norm() < 0.05 * s5.item()
    assert abs(a5.item() - a68.item()) < math.radians(4) and abs(s68.item() / s5.item() - 1) < 0.08
    with pytest.raises(ValueError, match="68"):
        extract_face_chips(images, points[:, :4])


def test_gradients_flow_to_pixels_and_landmarks(frames):
    image = _tensor(frames[0]).requires_grad_(True)
    points = _points(_face(frames[0]))[None].requires_grad_(True)
    chip = extract_face_chips(image, points)
    chip.mean().backward()
    assert image.grad.abs().sum() > 0 and torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0
