"""The mouth-interior generator and its geometry: crops aligned with the mouth, the inner-lip mask, pasting back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from talkinghead.config.base import ConfigError
from talkinghead.config.mouth import MouthGeneratorConfig
from talkinghead.models.mouth_generator import (
    MOUTH_INPUT_CHANNELS,
    MouthGenerator,
    cut_mouth,
    generator_inputs,
    mouth_opening,
    paint_mask,
    render_mouth,
)
from talkinghead.models.mouth_geometry import (
    INNER_LIP_RING,
    MOUTH_CORNERS,
    OUTER_LIP_RING,
    cut,
    mouth_affine,
    paste,
    polygon_mask,
    to_crop,
)
from talkinghead.models.mouth_interior import MouthInterior

CONFIG = MouthGeneratorConfig(enabled=True, crop_size=32, base_channels=8, max_channels=16, num_down_blocks=2)


def face_points(size: int = 128, opening: float = 10.0, angle: float = 0.0) -> torch.Tensor:
    """(1, 478, 2) points with a mouth at the frame's lower middle: corners 40 px apart, the inner lips ``opening`` apart."""
    points = np.zeros((478, 2), np.float32)
    centre = np.array([size / 2, size * 0.7], np.float32)
    half_width = 20.0
    for ring, scale in ((OUTER_LIP_RING, 1.0), (INNER_LIP_RING, 0.8)):
        n = len(ring)
        for i, index in enumerate(ring):  # upper lip first (corner to corner), then the lower back
            t = math.pi * i / (n // 2)
            gap = (opening / 2 + 4) if ring is OUTER_LIP_RING else opening / 2
            points[index] = centre + np.array([-half_width * scale * math.cos(t), -gap * math.sin(t)])
    points[MOUTH_CORNERS[0]] = centre + [-half_width, 0]
    points[MOUTH_CORNERS[1]] = centre + [half_width, 0]
    points[13], points[14] = centre + [0, -opening / 2], centre + [0, opening / 2]
    points[33], points[263] = [size * 0.3, size * 0.4], [size * 0.7, size * 0.4]
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], np.float32)
    points = (points - size / 2) @ rotation.T + size / 2
    return torch.from_numpy(points.astype(np.float32))[None]


def test_the_crop_is_centred_on_the_mouth_and_turns_with_it():
    for angle in (0.0, 0.4):
        points = face_points(angle=angle)
        theta = mouth_affine(points, 128, 2.0)
        in_crop = to_crop(points, theta, 128, 64)[0]
        right, left = in_crop[MOUTH_CORNERS[0]], in_crop[MOUTH_CORNERS[1]]
        # corners on the crop's horizontal middle line, a crop_scale-th of the side apart
        assert torch.allclose(right, torch.tensor([15.5, 31.5]), atol=1e-3)
        assert torch.allclose(left, torch.tensor([47.5, 31.5]), atol=1e-3)


def test_cut_then_paste_with_a_full_mask_returns_the_frame_inside_and_leaves_the_rest():
    torch.manual_seed(0)
    frame = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4) * 2 - 1, size=(128, 128), mode="bicubic")
    points = face_points()
    theta = mouth_affine(points, 128, 2.0)
    crop = cut(frame, theta, 64)
    ones = torch.ones(1, 1, 64, 64)
    back = paste(frame, crop, ones, theta)
    assert (back - frame).abs().max() < 0.03  # bilinear there and back on a smooth frame
    zeros = torch.zeros(1, 1, 64, 64)
    assert torch.equal(paste(frame, torch.rand(1, 3, 64, 64), zeros, theta), frame)


def test_polygon_mask_covers_the_polygons_area():
    square = torch.tensor([[[8.0, 8.0], [24.0, 8.0], [24.0, 24.0], [8.0, 24.0]]])
    mask = polygon_mask(square, 32)
    assert mask.shape == (1, 1, 32, 32)
    assert abs(mask.sum().item() - 16 * 16) < 16  # the anti-aliased edge is within a pixel row
    assert mask[0, 0, 16, 16] == 1 and mask[0, 0, 2, 2] == 0


def test_a_closed_mouth_is_left_exactly_as_it_is():
    generator = MouthGenerator(CONFIG)
    frame = torch.rand(2, 3, 128, 128) * 2 - 1
    closed = face_points(opening=0.0).expand(2, -1, -1)
    reference, inner = torch.zeros(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    candidates, rings = torch.rand(3, 3, 32, 32), torch.rand(3, 20, 2) * 32
    assert torch.equal(render_mouth(generator, frame, closed, reference, inner, candidates, rings, CONFIG), frame)


def test_an_open_mouth_is_painted_inside_its_lips_only():
    generator = MouthGenerator(CONFIG)
    frame = torch.zeros(1, 3, 128, 128)
    points = face_points(opening=16.0)
    with torch.no_grad():
        generator.to_rgb.bias.fill_(0.5)  # a constant correction shows where it paints
    out = render_mouth(generator, frame, points, torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32),
                       torch.zeros(0, 3, 32, 32), torch.zeros(0, 20, 2), CONFIG)
    changed = (out - frame).abs().amax(dim=1)[0] > 1e-6
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert len(ys) > 50
    # the inner opening (16 px half-width, 8 px half-height) grown by one crop pixel, feathered by two
    # and resampled by one: 4 crop pixels of 2.5 frame pixels; nothing elsewhere in the frame
    reach = 4 * 2.5
    assert xs.min() >= 64 - 16 - reach and xs.max() <= 64 + 16 + reach
    assert ys.min() >= 89.6 - 8 - reach and ys.max() <= 89.6 + 8 + reach


def test_generator_shapes_and_inputs():
    generator = MouthGenerator(CONFIG)
    frames = torch.rand(3, 3, 128, 128) * 2 - 1
    crop = cut_mouth(frames, face_points(opening=12.0).expand(3, -1, -1), CONFIG)
    assert crop.image.shape == (3, 3, 32, 32) and crop.inner.shape == (3, 1, 32, 32)
    assert (crop.outer >= crop.inner - 1e-6).all()  # the opening lies inside the lips
    retrieved = torch.rand(3, 3, 32, 32) * 2 - 1
    x = generator_inputs(crop, torch.zeros(3, 3, 32, 32), torch.zeros(3, 1, 32, 32), retrieved, CONFIG)
    assert x.shape == (3, MOUTH_INPUT_CHANNELS, 32, 32)
    assert (x[:, :3][crop.inner.expand(-1, 3, -1, -1) > 0] == 0).all()  # the opening is blanked
    out = generator(x)
    assert out.shape == (3, 3, 32, 32)
    assert torch.equal(out, retrieved)  # untrained: the retrieved interior as it is (zero-initialised correction)
    mask = paint_mask(crop, CONFIG)
    assert mask.min() >= 0 and mask.max() <= 1 and (mask >= crop.inner - 1e-6).all()
    with pytest.raises(ValueError, match="12"):
        generator(torch.zeros(1, 4, 32, 32))


def bank_generator() -> MouthGenerator:
    """A generator whose bank holds two people: person 4 with dark lips, person 7 with light lips."""
    generator = MouthGenerator(MouthGeneratorConfig(enabled=True, crop_size=32, base_channels=8, max_channels=16,
                                                    num_down_blocks=2, bank_size=6))
    crop = cut_mouth(torch.zeros(1, 3, 128, 128), face_points(opening=14.0), generator.config)
    generator.bank_rings[:4] = crop.ring[0]
    generator.bank_identities[:4] = torch.tensor([4, 4, 7, 7])
    generator.bank_images[:2], generator.bank_images[2:4] = 40, 220
    return generator


def test_reference_is_the_most_open_source_and_candidates_come_from_one_bank_person():
    generator = bank_generator()
    interior = MouthInterior(generator, generator.config)
    frames = torch.stack([torch.full((3, 128, 128), -0.5), torch.full((3, 128, 128), 0.6)])
    points = torch.cat([face_points(opening=2.0), face_points(opening=4.0)])
    assert mouth_opening(points).argmax() == 1
    reference = interior.reference(frames, points)
    assert torch.allclose(reference["mouth_reference"], torch.full((3, 32, 32), 0.6))
    assert reference["mouth_reference_inner"].sum() > 1
    # closed-mouthed photos: the bank person whose lips are nearest in colour (light: 7)
    assert reference["mouth_candidates"].shape[0] == 2
    assert torch.allclose(reference["mouth_candidates"], torch.full_like(reference["mouth_candidates"], 220 / 127.5 - 1))
    empty = interior.reference(None, None)
    assert empty["mouth_reference"].abs().sum() == 0 and empty["mouth_reference"].shape == (3, 32, 32)
    assert empty["mouth_candidates"].shape[0] == 2  # one person of the bank even without photos


def test_a_photo_with_the_mouth_open_paints_from_its_own_mouth():
    generator = bank_generator()
    interior = MouthInterior(generator, generator.config)
    frames = torch.stack([torch.full((3, 128, 128), -0.5), torch.full((3, 128, 128), 0.25)])
    points = torch.cat([face_points(opening=2.0), face_points(opening=30.0)])
    reference = interior.reference(frames, points)
    assert reference["mouth_candidates"].shape[0] == 1
    assert torch.allclose(reference["mouth_candidates"], torch.full((1, 3, 32, 32), 0.25))
    # an untrained generator pastes the retrieved (own) mouth, lip-matched: the frame's own colour
    target = torch.full((1, 3, 128, 128), 0.25)
    out = interior.paint(target, face_points(opening=20.0), reference)
    assert (out - target).abs().max() < 1e-4


def test_config_refuses_sizes_it_cannot_run():
    with pytest.raises(ConfigError, match="divisible"):
        MouthGeneratorConfig(crop_size=36, num_down_blocks=3)
    with pytest.raises(ConfigError, match="crop_scale"):
        MouthGeneratorConfig(crop_scale=0.9)
