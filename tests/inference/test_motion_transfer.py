"""Motion transfer: similarity fits, relative and absolute modes, temporal smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.data.crop import points_to_crop
from talkinghead.inference.motion import (
    MotionTransfer,
    Similarity,
    TemporalSmoother,
    face_scale,
    fit_similarity,
)

UPPER_INNER_LIP = [61, 62, 63]  # iBUG 68: inner lips are 60-67, corners 60 and 64
LOWER_INNER_LIP = [65, 66, 67]
LOWER_OUTER_LIP = [55, 56, 57, 58, 59]


def rotation_2d(angle: float) -> np.ndarray:
    """(2, 2) counter-clockwise rotation by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def random_rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A random proper (det +1) (dim, dim) rotation."""
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def synthetic_face(
    width: float, height: float, centre: tuple[float, float]
) -> np.ndarray:
    """A (68, 2) iBUG-ordered face, mouth closed, ``width`` x ``height`` pixels."""
    t = np.linspace(np.pi, 2 * np.pi, 17)
    jaw = np.stack(
        [0.5 * np.cos(t), -0.55 * np.sin(t) + 0.05], axis=1
    )  # 0-16, chin at +y
    brows = np.stack(
        [
            np.r_[np.linspace(-0.4, -0.1, 5), np.linspace(0.1, 0.4, 5)],
            np.full(10, -0.35),
        ],
        axis=1,
    )
    nose = np.concatenate(
        [
            np.stack([np.zeros(4), np.linspace(-0.25, 0.05, 4)], axis=1),
            np.stack([np.linspace(-0.1, 0.1, 5), np.full(5, 0.1)], axis=1),
        ]
    )
    eye = np.array(
        [[-0.1, 0], [-0.05, -0.03], [0.0, -0.03], [0.05, 0], [0.0, 0.03], [-0.05, 0.03]]
    )
    eyes = np.concatenate([eye + [-0.22, -0.2], eye + [0.22, -0.2]])
    outer = np.array(
        [[-0.2, 0.3], *[[x, 0.26] for x in np.linspace(-0.12, 0.12, 5)], [0.2, 0.3]]
    )
    outer = np.concatenate(
        [outer, [[x, 0.36] for x in np.linspace(0.12, -0.12, 5)]]
    )  # 48-59
    inner = np.array(
        [[-0.15, 0.3], [-0.07, 0.29], [0, 0.29], [0.07, 0.29], [0.15, 0.3]]
    )
    inner = np.concatenate([inner, [[0.07, 0.31], [0, 0.31], [-0.07, 0.31]]])  # 60-67
    face = np.concatenate([jaw, brows, nose, eyes, outer, inner])
    assert face.shape == (68, 2)
    return (face * [width, height] + centre).astype(np.float32)


def open_mouth(face: np.ndarray, gap: float) -> np.ndarray:
    """``face`` with the inner-lip gap widened by ``gap`` pixels (lower lip drops)."""
    opened = face.copy()
    opened[UPPER_INNER_LIP, 1] -= gap / 2
    opened[LOWER_INNER_LIP, 1] += gap / 2
    opened[LOWER_OUTER_LIP, 1] += gap / 2
    return opened


def lip_gap(face: np.ndarray) -> float:
    """Vertical distance between the inner lower and upper lips."""
    return float(face[LOWER_INNER_LIP, 1].mean() - face[UPPER_INNER_LIP, 1].mean())


# ---------------------------------------------------------------- fit_similarity


@pytest.mark.parametrize("dim", [2, 3])
def test_fit_similarity_recovers_known_transform(dim):
    rng = np.random.default_rng(dim)
    source = rng.normal(size=(40, dim)) * 30
    truth = Similarity(
        scale=1.7,
        rotation=random_rotation(rng, dim),
        translation=rng.normal(size=dim) * 50,
    )
    target = truth.apply(source) + rng.normal(size=source.shape) * 1e-3
    fitted = fit_similarity(source, target)
    assert fitted.scale == pytest.approx(1.7, rel=1e-4)
    np.testing.assert_allclose(fitted.rotation, truth.rotation, atol=1e-4)
    np.testing.assert_allclose(fitted.translation, truth.translation, atol=1e-2)
    np.testing.assert_allclose(fitted.inverse_apply(target), source, atol=1e-2)


@pytest.mark.parametrize("dim", [2, 3])
def test_fit_similarity_never_returns_a_reflection(dim):
    rng = np.random.default_rng(10 + dim)
    source = rng.normal(size=(30, dim))
    mirror = np.eye(dim)
    mirror[0, 0] = -1.0
    fitted = fit_similarity(source, source @ mirror.T)
    assert np.linalg.det(fitted.rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(
        fitted.rotation @ fitted.rotation.T, np.eye(dim), atol=1e-10
    )
    assert fitted.scale > 0


def test_fit_similarity_falls_back_to_2d_when_depth_is_zero():
    rng = np.random.default_rng(3)
    source = np.concatenate([rng.normal(size=(25, 2)) * 20, np.zeros((25, 1))], axis=1)
    angle = 0.4
    target = source.copy()
    target[:, :2] = 0.8 * source[:, :2] @ rotation_2d(angle).T + [5.0, -7.0]
    fitted = fit_similarity(source, target)
    assert fitted.rotation.shape == (3, 3)
    assert fitted.scale == pytest.approx(0.8)
    np.testing.assert_allclose(fitted.rotation[:2, :2], rotation_2d(angle), atol=1e-9)
    np.testing.assert_allclose(fitted.rotation[2], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(fitted.translation, [5.0, -7.0, 0.0], atol=1e-9)
    # Depth is scaled like x and y, so a point off the plane stays a similarity image.
    assert fitted.apply(np.array([0.0, 0.0, 10.0]))[2] == pytest.approx(8.0)


def test_fit_similarity_falls_back_to_2d_when_only_one_side_has_depth():
    rng = np.random.default_rng(4)
    xy = rng.normal(size=(20, 2)) * 10
    source = np.concatenate([xy, np.zeros((20, 1))], axis=1)
    target = np.concatenate([xy + [1.0, 2.0], rng.normal(size=(20, 1))], axis=1)
    fitted = fit_similarity(source, target)
    assert fitted.scale == pytest.approx(1.0)
    np.testing.assert_allclose(fitted.rotation, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(fitted.translation, [1.0, 2.0, 0.0], atol=1e-9)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (np.zeros((5, 2)) + np.arange(5)[:, None], np.zeros((6, 2)), "same shape"),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            np.random.default_rng(1).normal(size=(5, 3)),
            "same shape",
        ),
        (
            np.array([[0.0, 0.0], [1.0, 0.0]]),
            np.array([[0.0, 0.0], [2.0, 0.0]]),
            "at least 3",
        ),
        (np.ones((5, 2)), np.random.default_rng(2).normal(size=(5, 2)), "degenerate"),
        (np.random.default_rng(2).normal(size=(5, 2)), np.ones((5, 2)), "degenerate"),
        (np.zeros((5, 4)), np.zeros((5, 4)), r"\(N, 2\) or \(N, 3\)"),
    ],
)
def test_fit_similarity_rejects_bad_inputs(source, target, message):
    with pytest.raises(ValueError, match=message):
        fit_similarity(source, target)


def test_face_scale_is_rms_radius_of_xy():
    points = np.array(
        [[1.0, 0.0, 50.0], [-1.0, 0.0, -9.0], [0.0, 1.0, 3.0], [0.0, -1.0, 0.0]]
    )
    assert face_scale(points + [10.0, 20.0, 0.0]) == pytest.approx(1.0)
    assert face_scale(3 * points[:, :2]) == pytest.approx(3.0)


# ---------------------------------------------------------------- relative mode


@pytest.fixture
def faces():
    """Driver reference in image pixels; a smaller, differently shaped source."""
    reference = synthetic_face(200, 240, (400, 300))
    source = synthetic_face(120, 130, (128, 140))
    return reference, source


def test_relative_reference_frame_returns_source(faces):
    reference, source = faces
    transfer = MotionTransfer(
        "relative", size=256, source_points=source, reference_points=reference
    )
    out = transfer(reference)
    assert out.dtype == np.float32 and out.shape == source.shape
    np.testing.assert_allclose(out, source, atol=1e-3)


@pytest.mark.parametrize("with_depth", [False, True])
def test_relative_rigid_driver_moves_source_about_its_centre(faces, with_depth):
    reference, source = faces
    if with_depth:
        rng = np.random.default_rng(5)
        reference = np.concatenate([reference, rng.normal(size=(68, 1)) * 20], axis=1)
        source = np.concatenate([source, rng.normal(size=(68, 1)) * 10], axis=1)
        rigid = Similarity(1.25, random_rotation(rng, 3), np.array([30.0, -12.0, 4.0]))
    else:
        rigid = Similarity(1.25, rotation_2d(0.3), np.array([30.0, -12.0]))
    current = rigid.apply(reference)
    transfer = MotionTransfer(
        "relative", size=256, source_points=source, reference_points=reference
    )
    out = transfer(current)

    k = face_scale(source) / face_scale(reference)
    centre = source.mean(axis=0)
    driver_shift = rigid.apply(reference.mean(axis=0)) - reference.mean(axis=0)
    expected = 1.25 * (source - centre) @ rigid.rotation.T + centre + k * driver_shift
    np.testing.assert_allclose(out, expected, atol=1e-2)
    # Same angle and scale factor as the driver, about the source's own centre.
    seen = fit_similarity(source, out)
    assert seen.scale == pytest.approx(1.25, rel=1e-5)
    np.testing.assert_allclose(seen.rotation, rigid.rotation, atol=1e-5)
    np.testing.assert_allclose(out.mean(axis=0), centre + k * driver_shift, atol=1e-3)


def test_relative_mouth_opening_keeps_source_face_size(faces):
    reference, source = faces
    transfer = MotionTransfer(
        "relative", size=256, source_points=source, reference_points=reference
    )
    k = face_scale(source) / face_scale(reference)
    driver_gap = 40.0  # pixels, a wide-open mouth on a 240-pixel-tall face
    out = transfer(open_mouth(reference, driver_gap))

    assert face_scale(out) == pytest.approx(face_scale(source), rel=0.02)
    gap_change = lip_gap(out) - lip_gap(source)
    assert gap_change == pytest.approx(k * driver_gap, rel=0.01)
    # Absolute transfer would have pasted the driver's larger face instead.
    assert face_scale(open_mouth(reference, driver_gap)) > 1.5 * face_scale(source)


def test_relative_expression_survives_head_motion(faces):
    reference, source = faces
    transfer = MotionTransfer(
        "relative", size=256, source_points=source, reference_points=reference
    )
    still = transfer(open_mouth(reference, 30.0))
    rigid = Similarity(1.0, rotation_2d(-0.25), np.array([-40.0, 15.0]))
    moved = transfer(rigid.apply(open_mouth(reference, 30.0)))
    # Moving the driver's head rigidly only moves the result rigidly: the expression
    # is unchanged.
    undo = fit_similarity(moved, still)
    np.testing.assert_allclose(undo.apply(moved), still, atol=1e-2)


def test_relative_rejects_bad_inputs(faces):
    reference, source = faces
    with pytest.raises(ValueError, match="source_points"):
        MotionTransfer("relative", size=256, reference_points=reference)
    with pytest.raises(ValueError, match="same shape"):
        MotionTransfer(
            "relative", size=256, source_points=source[:60], reference_points=reference
        )
    transfer = MotionTransfer(
        "relative", size=256, source_points=source, reference_points=reference
    )
    with pytest.raises(ValueError, match="same landmark detector"):
        transfer(reference[:60])
    with pytest.raises(ValueError, match="same landmark detector"):
        transfer(np.concatenate([reference, np.zeros((68, 1), np.float32)], axis=1))


def test_unknown_mode_names_valid_modes():
    with pytest.raises(ValueError, match="absolute, relative"):
        MotionTransfer("mirror", size=64)


# ---------------------------------------------------------------- absolute mode


def test_absolute_mode_is_points_to_crop(faces):
    reference, _ = faces
    box = np.array([250.0, 150.0, 550.0, 450.0])
    points = np.concatenate([reference, np.full((68, 1), 7.0, np.float32)], axis=1)
    transfer = MotionTransfer("absolute", size=64, driver_box=box)
    out = transfer(points)
    np.testing.assert_array_equal(out, points_to_crop(points, box, 64))
    assert out.shape == (68, 3) and out.dtype == np.float32


def test_absolute_mode_needs_a_box():
    with pytest.raises(ValueError, match="driver_box"):
        MotionTransfer("absolute", size=64)


# ---------------------------------------------------------------- TemporalSmoother


def run_smoother(
    smoother: TemporalSmoother, track: np.ndarray
) -> tuple[np.ndarray, list]:
    """Push a (F, N, d) track through ``smoother``; return smoothed track, payloads."""
    outputs = []
    for i, points in enumerate(track):
        outputs += smoother.push(points, payload=i)
        assert len(smoother._buffer) <= 2 * smoother.radius + 1
    outputs += smoother.flush()
    return np.stack([points for points, _ in outputs]), [
        payload for _, payload in outputs
    ]


def test_smoother_zero_sigma_passes_through():
    track = np.random.default_rng(0).normal(size=(6, 5, 2)).astype(np.float32)
    smoother = TemporalSmoother(0)
    first = smoother.push(track[0], "a")
    assert len(first) == 1 and first[0][1] == "a"
    np.testing.assert_array_equal(first[0][0], track[0])
    smoothed, _ = run_smoother(TemporalSmoother(0), track)
    np.testing.assert_array_equal(smoothed, track)


def test_smoother_keeps_a_constant_track_constant():
    track = np.broadcast_to(np.arange(10, dtype=np.float32).reshape(5, 2), (12, 5, 2))
    smoothed, _ = run_smoother(TemporalSmoother(1.5), track)
    np.testing.assert_allclose(smoothed, track, atol=1e-5)


def test_smoother_reduces_jitter_on_a_line():
    rng = np.random.default_rng(1)
    frames = np.arange(80, dtype=np.float64)
    line = np.stack([2.0 * frames + 10, -0.5 * frames + 40], axis=1)[
        :, None, :
    ]  # (F, 1, 2)
    noisy = (line + rng.normal(size=line.shape)).astype(np.float32)
    smoothed, _ = run_smoother(TemporalSmoother(2.0), noisy)
    inner = slice(6, -6)  # away from the ends, where the window is one-sided
    before = np.sqrt(np.mean((noisy[inner] - line[inner]) ** 2))
    after = np.sqrt(np.mean((smoothed[inner] - line[inner]) ** 2))
    assert after < 0.5 * before
    # Frame-to-frame jitter (second differences) drops too.
    assert (
        np.abs(np.diff(smoothed, n=2, axis=0)).mean()
        < 0.3 * np.abs(np.diff(noisy, n=2, axis=0)).mean()
    )


def test_smoother_renormalises_at_the_ends():
    smoother = TemporalSmoother(1.0)  # radius 3
    track = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0], dtype=np.float32).reshape(
        7, 1, 1
    )
    smoothed, _ = run_smoother(smoother, track)
    weights = np.exp(-0.5 * np.arange(4.0) ** 2)  # offsets 0..3 seen by the last frame
    assert smoothed[-1, 0, 0] == pytest.approx(
        10.0 * weights[0] / weights.sum(), rel=1e-5
    )
    assert smoothed[0, 0, 0] == pytest.approx(0.0)


@pytest.mark.parametrize(("sigma", "length"), [(0.5, 1), (1.0, 2), (1.0, 25), (2.5, 9)])
def test_smoother_emits_every_item_once_in_order(sigma, length):
    smoother = TemporalSmoother(sigma)
    track = np.random.default_rng(2).normal(size=(length, 3, 2))
    emitted_during_push = 0
    payloads = []
    for i, points in enumerate(track):
        ready = smoother.push(points, payload={"frame": i})
        emitted_during_push += len(ready)
        payloads += [payload["frame"] for _, payload in ready]
        # An item becomes final exactly once ``radius`` later items exist.
        assert len(payloads) == max(0, i + 1 - smoother.radius)
        assert len(smoother._buffer) <= 2 * smoother.radius + 1
    payloads += [payload["frame"] for _, payload in smoother.flush()]
    assert payloads == list(range(length))
    assert smoother.flush() == []


def test_smoother_rejects_bad_inputs():
    with pytest.raises(ValueError, match="sigma"):
        TemporalSmoother(-1.0)
    with pytest.raises(ValueError, match="sigma"):
        TemporalSmoother(float("nan"))
    smoother = TemporalSmoother(1.0)
    smoother.push(np.zeros((68, 2)))
    with pytest.raises(ValueError, match="do not match"):
        smoother.push(np.zeros((478, 3)))


# ------------------------------------------------ relative motion in the canonical 3-D frame

def _face_3d(rotation: np.ndarray, scale: float, translation, delta=None) -> np.ndarray:
    """(478, 3) mediapipe-layout face composed from a pose and an expression."""
    from talkinghead.data.landmarks.canonical_frame import CanonicalPose

    delta = np.zeros((478, 3)) if delta is None else delta
    return CanonicalPose(scale, rotation, np.asarray(translation, dtype=np.float64), delta).compose()


def _yaw(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _mouth_delta(gap: float) -> np.ndarray:
    from talkinghead.data.landmarks.openings import LIP_CONTOURS

    delta = np.zeros((478, 3))
    delta[list(LIP_CONTOURS[1]), 1] = gap
    return delta


def test_canonical_relative_returns_the_source_for_the_neutral_frame():
    source = _face_3d(_yaw(35), 120.0, [64, 70, 3])
    neutral = _face_3d(_yaw(-5), 300.0, [250, 240, 0], _mouth_delta(0.01))
    transfer = MotionTransfer("relative", size=128, source_points=source, reference_points=neutral)
    np.testing.assert_allclose(transfer(neutral), source, atol=1e-4)


def test_canonical_relative_rotates_a_pure_expression_with_the_source_pose():
    source_rotation = _yaw(35)
    source = _face_3d(source_rotation, 120.0, [64, 70, 3])
    neutral = _face_3d(np.eye(3), 300.0, [250, 240, 0])
    opened = _face_3d(np.eye(3), 300.0, [250, 240, 0], _mouth_delta(0.04))
    out = MotionTransfer("relative", size=128, source_points=source, reference_points=neutral)(opened)
    # the same lip drop, turned with the source's 35 degree yaw, at the source's scale
    expected = _face_3d(source_rotation, 120.0, [64, 70, 3], _mouth_delta(0.04))
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_canonical_relative_expression_scale_zero_is_pose_only():
    source = _face_3d(_yaw(20), 120.0, [64, 70, 3])
    neutral = _face_3d(np.eye(3), 300.0, [250, 240, 0])
    turned_and_talking = _face_3d(_yaw(15), 330.0, [260, 230, 5], _mouth_delta(0.05))
    out = MotionTransfer(
        "relative", size=128, source_points=source, reference_points=neutral, expression_scale=0.0
    )(turned_and_talking)
    expected = _face_3d(_yaw(20) @ _yaw(15), 132.0, np.array([64, 70, 3]) + 0.4 * np.array([10, -10, 5]))
    np.testing.assert_allclose(out, expected, atol=1e-3)
    doubled = MotionTransfer(
        "relative", size=128, source_points=source, reference_points=neutral, expression_scale=2.0
    )(turned_and_talking)
    np.testing.assert_allclose(
        doubled, _face_3d(_yaw(35), 132.0, [68, 66, 5], _mouth_delta(0.10)), atol=1e-3
    )


def test_canonical_relative_retargets_an_open_mouth_source():
    from talkinghead.data.landmarks.canonical_frame import canonical_shape
    from talkinghead.data.landmarks.openings import mouth_opening

    rest = mouth_opening(canonical_shape())
    source = _face_3d(np.eye(3), 120.0, [64, 70, 3], _mouth_delta(0.06))  # photo with an open mouth
    neutral = _face_3d(np.eye(3), 300.0, [250, 240, 0])
    kwargs = dict(size=128, source_points=source, reference_points=neutral)
    plain = MotionTransfer("relative", **kwargs)
    retargeted = MotionTransfer("relative", retarget=("lips",), **kwargs)
    # driver at rest: without retargeting the mouth stays open, with it the result is at rest
    assert mouth_opening(plain(neutral)) > rest + 0.1
    assert mouth_opening(retargeted(neutral)) == pytest.approx(rest, abs=2e-3)
    opened = _face_3d(np.eye(3), 300.0, [250, 240, 0], _mouth_delta(0.05))
    driver_change = mouth_opening(opened) - mouth_opening(neutral)
    assert mouth_opening(retargeted(opened)) - rest == pytest.approx(driver_change, abs=2e-3)


def test_retarget_needs_the_dense_layout_and_known_regions():
    face = synthetic_face(100, 120, (64, 64))
    with pytest.raises(ValueError, match="478 3-D landmarks"):
        MotionTransfer("relative", size=128, source_points=face, reference_points=face, retarget=("lips",))
    with pytest.raises(ValueError, match="unknown retarget"):
        MotionTransfer("relative", size=128, source_points=face, reference_points=face, retarget=("nose",))
    with pytest.raises(ValueError, match="expression_scale"):
        MotionTransfer("relative", size=128, source_points=face, reference_points=face, expression_scale=-1)


def test_canonical_relative_closes_lips_instead_of_crossing_them():
    from talkinghead.data.landmarks.canonical_frame import canonical_shape, decompose

    source = _face_3d(np.eye(3), 120.0, [64, 70, 3])
    neutral = _face_3d(np.eye(3), 300.0, [250, 240, 0], _mouth_delta(0.06))  # driver talking at frame 0
    closed = _face_3d(np.eye(3), 300.0, [250, 240, 0])
    out = MotionTransfer("relative", size=128, source_points=source, reference_points=neutral)(closed)
    shape = canonical_shape() + decompose(out).delta
    assert shape[14, 1] - shape[13, 1] == pytest.approx(0.0, abs=1e-4)  # lower inner lip meets the upper


def test_closing_the_lips_keeps_the_upper_lip_whole():
    """The guard moves the upper lip's outer contour with its inner one: the lip never thins to a line."""
    from talkinghead.data.landmarks.canonical_frame import canonical_shape, decompose

    source = _face_3d(np.eye(3), 120.0, [64, 70, 3])
    talking = np.zeros((478, 3))
    talking[[13, 82, 81, 80, 312, 311, 310], 1] = -0.02  # an "O": the upper inner lip raised
    talking[[14, 87, 178, 317, 402], 1] = 0.05
    neutral = _face_3d(np.eye(3), 300.0, [250, 240, 0], talking)
    closed = _face_3d(np.eye(3), 300.0, [250, 240, 0])
    out = MotionTransfer("relative", size=128, source_points=source, reference_points=neutral)(closed)
    shape = canonical_shape() + decompose(out).delta
    rest = canonical_shape()
    thickness = shape[13, 1] - shape[0, 1]  # upper lip: from its outer top (0) to its inner edge (13)
    assert shape[14, 1] - shape[13, 1] == pytest.approx(0.0, abs=1e-4)
    assert thickness == pytest.approx((rest[13, 1] - rest[0, 1]) + 0.02, abs=0.01)


def test_cli_passes_expression_scale_and_retarget():
    from talkinghead.cli import build_parser
    from talkinghead.cli.animate import _animate_options
    from talkinghead.errors import InvalidInputError
    from talkinghead.inference.options import AnimateOptions

    base = ["animate", "--checkpoint", "m", "--source", "s.jpg", "--driving", "d.mp4", "--output", "o.mp4"]
    options = _animate_options(build_parser().parse_args(base + ["--expression-scale", "0.5", "--retarget", "lips"]))
    assert options.expression_scale == 0.5 and options.retarget == ("lips",)
    default = _animate_options(build_parser().parse_args(base))
    assert default.expression_scale == 1.0 and default.retarget == () and default.canonical_frame
    with pytest.raises(InvalidInputError, match="expression_scale"):
        AnimateOptions(expression_scale=-0.5)
