"""Paste-back: the face mask's geometry, and blending a crop into real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from talkinghead.data.crop import clip_crop_box, crop_image, points_to_crop
from talkinghead.data.landmarks.factory import create_landmarker
from talkinghead.inference.paste_back import PasteBack, face_mask, paste_back

HEAD_SCALE, HEAD_OFFSET = 1.8, 0.1  # the crop scheme of configs/prepare/default.yaml
RED = (255, 0, 0)


def synthetic_face(size: int, centre=(0.5, 0.47), scale: float = 0.2) -> np.ndarray:
    """(68, 2) float32 plausible frontal iBUG-68 layout in crop pixels.

    ``scale`` is the half-width of the jaw as a fraction of ``size``; the eyes sit at
    ``centre``, the chin 1.2 half-widths below them and the brows 0.35 above.
    """
    cx, cy = centre[0] * size, centre[1] * size
    f = scale * size

    def ring(c, rx, ry, n):
        t = np.pi + np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([c[0] + rx * np.cos(t), c[1] + ry * np.sin(t)], axis=1)

    t = np.linspace(np.pi, 0, 17)  # image left ear -> chin -> image right ear
    jaw = np.stack([cx + f * np.cos(t), cy + 1.2 * f * np.sin(t)], axis=1)
    across = np.linspace(0.15, 0.8, 5)
    arch = 0.35 + 0.08 * np.sin(np.linspace(0, np.pi, 5))
    right_brow = np.stack([cx - across[::-1] * f, cy - arch * f], axis=1)
    left_brow = np.stack([cx + across * f, cy - arch * f], axis=1)
    bridge = np.stack([np.full(4, cx), cy + np.linspace(-0.2, 0.35, 4) * f], axis=1)
    base = np.stack(
        [cx + np.linspace(-0.2, 0.2, 5) * f, np.full(5, cy + 0.45 * f)], axis=1
    )
    right_eye = ring((cx - 0.4 * f, cy - 0.1 * f), 0.15 * f, 0.06 * f, 6)
    left_eye = ring((cx + 0.4 * f, cy - 0.1 * f), 0.15 * f, 0.06 * f, 6)
    outer_lips = ring((cx, cy + 0.75 * f), 0.35 * f, 0.15 * f, 12)
    inner_lips = ring((cx, cy + 0.75 * f), 0.25 * f, 0.05 * f, 8)
    parts = [jaw, right_brow, left_brow, bridge, base, right_eye, left_eye]
    points = np.concatenate([*parts, outer_lips, inner_lips]).astype(np.float32)
    assert points.shape == (68, 2)
    return points


def at(image: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The pixel of ``image`` under an (x, y) point."""
    x, y = (int(round(float(v))) for v in point)
    return image[y, x]


def face_centre(points68: np.ndarray) -> np.ndarray:
    """(2,) middle of the nose: well inside the face whatever the pose."""
    return points68[27:36].mean(axis=0)


def pixel_box(box: np.ndarray) -> tuple[int, int, int, int]:
    return tuple(int(round(v)) for v in box)


def outside_box(shape: tuple[int, ...], box: np.ndarray) -> np.ndarray:
    """(H, W) bool, True outside the rounded box."""
    x0, y0, x1, y1 = pixel_box(box)
    inside = np.zeros(shape[:2], dtype=bool)
    inside[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return ~inside


def red_crop(size: int) -> np.ndarray:
    crop = np.zeros((size, size, 3), dtype=np.uint8)
    crop[...] = RED
    return crop


def load_face(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) RGB photo and (68, 2) landmarks (image pixels) of its main face."""
    bgr = cv2.imread(str(path))
    assert bgr is not None, f"could not read {path}"
    photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    landmarker = create_landmarker("mediapipe")
    try:
        faces = landmarker.detect(photo)
    finally:
        landmarker.close()
    assert faces, f"no face found in {path}"
    return photo, faces[0].ibug68


@pytest.fixture(scope="module")
def obama(real_data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1480x832 photo, its landmarks (image pixels) and a head box inside the photo."""
    photo, points = load_face(real_data / "facerec_obama1.jpg")
    face_box = np.concatenate([points.min(axis=0), points.max(axis=0)])
    box = clip_crop_box(face_box[None], HEAD_SCALE, HEAD_OFFSET)
    x0, y0, x1, y1 = pixel_box(box)
    assert 0 <= x0 and 0 <= y0 and x1 <= photo.shape[1] and y1 <= photo.shape[0]
    return photo, points, box


@pytest.fixture(scope="module")
def happy(real_data) -> tuple[np.ndarray, np.ndarray]:
    """256x256 photo filled by a face, and its landmarks (image pixels)."""
    return load_face(real_data / "sadtalker_happy.png")


# ---------------------------------------------------------------------------- face_mask


@pytest.mark.parametrize("size", [64, 256])
def test_face_mask_range_centre_corners_and_feather(size):
    points = synthetic_face(size)
    mask = face_mask(points, size)
    assert mask.shape == (size, size) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert at(mask, points.mean(axis=0)) > 0.99
    assert max(mask[0, 0], mask[0, -1], mask[-1, 0], mask[-1, -1]) < 0.01
    intermediate = (mask > 0.05) & (mask < 0.95)
    assert intermediate.mean() > 0.02  # a feathered border, not a hard edge


def test_face_mask_falls_monotonically_away_from_the_face():
    size = 256
    points = synthetic_face(size)
    mask = face_mask(points, size)
    centre = points.mean(axis=0)
    for angle in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        direction = np.array([np.cos(angle), np.sin(angle)])
        steps = np.arange(0, size)
        ray = centre[None] + steps[:, None] * direction[None]  # (n, 2)
        ray = ray[((ray >= 0) & (ray <= size - 1)).all(axis=1)]
        values = np.array([at(mask, p) for p in ray])
        assert values[0] > 0.99 and values[-1] < 0.01
        assert np.diff(values).max() < 2e-3, (
            f"mask rises again along {np.degrees(angle):.0f} deg"
        )


def test_face_mask_covers_the_forehead_but_not_the_neck():
    size = 256
    points = synthetic_face(size)
    mask = face_mask(points, size)
    brows, chin = points[17:27].mean(axis=0), points[8]
    height = chin[1] - brows[1]  # the synthetic face is upright
    assert at(mask, brows - [0, 0.3 * height]) > 0.95  # forehead
    assert at(mask, chin + [0, 0.6 * height]) < 0.05  # neck
    # The feathered band lies outside the outline (no translucent doubled contour): the jaw is covered.
    assert at(mask, chin) > 0.95
    assert at(face_mask(points, size, cover=0.0), chin) < 0.9
    # A larger forehead option reaches higher up.
    high = brows - [0, 0.95 * height]
    assert at(face_mask(points, size, forehead=1.0), high) > at(mask, high) + 0.3


def test_face_mask_follows_head_roll():
    size = 256
    points = synthetic_face(size, centre=(0.5, 0.5))
    rotation = cv2.getRotationMatrix2D((size / 2, size / 2), 25.0, 1.0)  # (2, 3)
    rolled = points @ rotation[:, :2].T + rotation[:, 2]
    expected = cv2.warpAffine(face_mask(points, size), rotation, (size, size))
    mask = face_mask(rolled, size)
    overlap = ((mask > 0.5) & (expected > 0.5)).sum() / (
        (mask > 0.5) | (expected > 0.5)
    ).sum()
    assert overlap > 0.97
    assert np.abs(mask - expected).mean() < 0.01


def test_face_mask_without_feather_is_hard():
    def intermediate(mask):
        return ((mask > 0.01) & (mask < 0.99)).mean()

    hard = face_mask(synthetic_face(128), 128, feather=0.0)
    soft = face_mask(synthetic_face(128), 128)
    assert intermediate(hard) < 0.04  # only the anti-aliased outline
    assert intermediate(soft) > 4 * intermediate(hard)


@pytest.mark.parametrize(
    "points, size, message",
    [
        (np.zeros((67, 2)), 64, "68, 2"),
        (np.zeros((68,)), 64, "68, 2"),
        (np.full((68, 2), np.nan), 64, "NaN"),
        (np.full((68, 2), 5.0), 64, "no area"),
        (None, 0, "positive int"),
        (None, 64.0, "positive int"),
    ],
)
def test_face_mask_rejects_bad_input(points, size, message):
    points = synthetic_face(64) if points is None else points
    with pytest.raises(ValueError, match=message):
        face_mask(points, size)


# ---------------------------------------------------------------------------- paste_back


def test_own_crop_at_native_size_pastes_back_exactly(obama):
    photo, points, _ = obama
    # A box whose side is the crop side: no resampling, so only misplacement can differ.
    side = 200
    x, y = (
        face_centre(points) - side / 2 + [0.3, -0.4]
    )  # fractional, rounded like crop_image
    box = np.array([x, y, x + side, y + side])
    crop = crop_image(photo, box, side)
    out = paste_back(photo, crop, box, np.ones((side, side), np.float32))
    np.testing.assert_array_equal(out, photo)
    # The same crop one pixel off is clearly visible: the check above can see misplacement.
    shifted = paste_back(
        photo, crop, box + [1, 0, 1, 0], np.ones((side, side), np.float32)
    )
    inside = ~outside_box(photo.shape, box)
    assert np.abs(shifted.astype(int) - photo)[inside].mean() > 1.0


@pytest.mark.parametrize("size, tolerance", [(64, 6.0), (256, 2.5)])
def test_own_crop_pastes_back_within_resampling_error(obama, size, tolerance):
    photo, points, box = obama
    crop = crop_image(photo, box, size)
    mask = face_mask(points_to_crop(points, box, size), size)
    before = photo.copy()
    out = paste_back(photo, crop, box, mask)
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(photo, before)  # not modified in place
    outside = outside_box(photo.shape, box)
    np.testing.assert_array_equal(out[outside], photo[outside])
    error = np.abs(out.astype(np.float64) - photo).max(axis=2)  # (H, W)
    assert error[~outside].mean() < tolerance


def test_red_crop_turns_the_face_red_and_nothing_outside_the_box(obama):
    photo, points, box = obama
    size = 128
    mask = face_mask(points_to_crop(points, box, size), size)
    out = paste_back(photo, red_crop(size), box, mask)
    assert out.shape == photo.shape
    np.testing.assert_array_equal(at(out, face_centre(points)), RED)
    outside = outside_box(photo.shape, box)
    np.testing.assert_array_equal(out[outside], photo[outside])
    # The mask is 0 at the crop's corners, so the box's corners keep the photo too.
    x0, y0, x1, y1 = pixel_box(box)
    for x, y in [(x0, y0), (x1 - 1, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)]:
        np.testing.assert_array_equal(out[y, x], photo[y, x])


def test_box_past_every_border(happy):
    photo, points = happy
    h, w = photo.shape[:2]
    cx, cy = face_centre(points)
    side = 1.6 * max(h, w)
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    x0, y0, x1, y1 = pixel_box(box)
    assert x0 < 0 and y0 < 0 and x1 > w and y1 > h

    size = 128
    crop = crop_image(photo, box, size)
    mask = face_mask(points_to_crop(points, box, size), size)
    own = paste_back(photo, crop, box, mask)
    assert own.shape == photo.shape
    assert np.abs(own.astype(np.float64) - photo).mean() < 3.0
    red = paste_back(photo, red_crop(size), box, mask)
    np.testing.assert_array_equal(at(red, face_centre(points)), RED)

    # At the native side, the visible part of the padded crop is put back exactly.
    native = int(round(side))
    box = np.array([cx - native / 2, cy - native / 2, cx + native / 2, cy + native / 2])
    native = pixel_box(box)[2] - pixel_box(box)[0]
    crop = crop_image(photo, box, native)
    ones = np.ones((native, native), np.float32)
    np.testing.assert_array_equal(paste_back(photo, crop, box, ones), photo)


def test_box_partly_or_wholly_outside_the_photo(happy):
    photo, _ = happy
    h, w = photo.shape[:2]
    size = 32
    ones = np.ones((size, size), np.float32)
    corner = np.array(
        [w - 20.0, -30.0, w + 40.0, 30.0]
    )  # top-right corner, 20x30 visible
    out = paste_back(photo, red_crop(size), corner, ones)
    assert (out[:30, w - 20 :] == RED).all()
    outside = outside_box(photo.shape, corner)
    np.testing.assert_array_equal(out[outside], photo[outside])

    away = np.array([w + 10.0, 0.0, w + 50.0, 40.0])
    out = paste_back(photo, red_crop(size), away, ones)
    np.testing.assert_array_equal(out, photo)
    assert out is not photo


def test_paste_back_class_uses_the_union_of_source_and_driven_masks(obama):
    photo, points, box = obama
    size = 128
    source = points_to_crop(points, box, size)
    driven = source - [0.45 * size, 0.0]  # the head moved far to the image left
    paster = PasteBack(photo, box, size, source)
    centre = face_centre(source)

    union = paster.mask(driven)
    assert at(union, centre) > 0.99 and at(union, face_centre(driven)) > 0.99
    assert at(face_mask(driven, size), centre) < 0.5  # the driven mask alone misses it

    out = paster(red_crop(size), driven)
    expected = paste_back(
        photo, red_crop(size), box, np.maximum(paster.source_mask, union)
    )
    np.testing.assert_array_equal(out, expected)
    image_centre = face_centre(points)
    np.testing.assert_array_equal(at(out, image_centre), RED)  # the old face is covered
    driven_only = paste_back(photo, red_crop(size), box, face_mask(driven, size))
    assert not np.array_equal(at(driven_only, image_centre), RED)

    # Without driven landmarks it blends through the source mask alone.
    np.testing.assert_array_equal(
        paster(red_crop(size)),
        paste_back(photo, red_crop(size), box, paster.source_mask),
    )


def test_paste_back_class_keeps_its_own_copy_of_the_photo(obama):
    photo, points, box = obama
    size = 64
    edited = photo.copy()
    paster = PasteBack(edited, box, size, points_to_crop(points, box, size))
    first = paster(red_crop(size))
    edited[...] = 0
    np.testing.assert_array_equal(paster(red_crop(size)), first)
    assert paster.photo_shape == photo.shape


# ---------------------------------------------------------------------------- errors


def test_paste_back_errors_say_what_is_wrong():
    photo = np.zeros((40, 50, 3), np.uint8)
    crop = np.zeros((16, 16, 3), np.uint8)
    mask = np.ones((16, 16), np.float32)
    box = np.array([5.0, 5.0, 25.0, 25.0])
    cases = [
        ((photo.astype(np.float32), crop, box, mask), "photo must be uint8"),
        ((photo[..., 0], crop, box, mask), r"photo must be an \(H, W, 3\)"),
        ((photo, crop[:, :15], box, mask), "crop must be square"),
        ((photo, crop.astype(np.int64), box, mask), "crop must be uint8"),
        ((photo, crop, box, mask[:8]), r"mask must have the crop's shape \(16, 16\)"),
        ((photo, crop, box, mask.astype(np.uint8)), "mask must be a float array"),
        ((photo, crop, box, mask * 2), r"mask values must lie in \[0, 1\]"),
        ((photo, crop, box[:3], mask), "box must be 4 finite numbers"),
        ((photo, crop, np.array([5.0, 5.0, 5.2, 25.0]), mask), "no area"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            paste_back(*args)
    # A float64 mask is fine.
    assert paste_back(photo, crop, box, mask.astype(np.float64)).shape == photo.shape


def test_paste_back_class_errors_say_what_is_wrong():
    photo = np.zeros((40, 50, 3), np.uint8)
    box = np.array([5.0, 5.0, 25.0, 25.0])
    points = synthetic_face(16)
    with pytest.raises(ValueError, match="built for size 16"):
        PasteBack(photo, box, 16, points)(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="photo must be uint8"):
        PasteBack(photo.astype(np.float64), box, 16, points)
    with pytest.raises(ValueError, match="68, 2"):
        PasteBack(photo, box, 16, points[:10])
    with pytest.raises(ValueError, match="68, 2"):
        PasteBack(photo, box, 16, points)(np.zeros((16, 16, 3), np.uint8), points[:10])


def test_paste_back_class_of_an_unchanged_frame_returns_the_photo(obama):
    photo, points, _ = obama
    side = 256
    x, y = face_centre(points) - side / 2
    box = np.array([x, y, x + side, y + side])
    crop = crop_image(photo, box, side)  # the frame as an identity warp at the output size renders it
    local = points_to_crop(points, box, side)
    paster = PasteBack(photo, box, side, local)
    np.testing.assert_array_equal(paster(crop, local), photo)
