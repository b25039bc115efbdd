"""MetaPortrait's paper blocks: warping, the fusion block (Eq. 1-2), E_w, F_w, G_r, D, ONNX export of F_w."""

from __future__ import annotations

import pytest
import torch
from model_test_mixin import ModelTesterMixin

from talkinghead.config.metaportrait import (
    FlowNetworkConfig,
    MotionEncoderConfig,
    PatchDiscriminatorConfig,
    RefinementNetworkConfig,
)
from talkinghead.models.flow_network import FlowNetwork
from talkinghead.models.motion_encoder import MotionEncoder
from talkinghead.models.patch_discriminator import MultiScalePatchDiscriminator
from talkinghead.models.refinement_network import FusionBlock, RefinementNetwork
from talkinghead.models.warping import warp

SIZE = 32
ID_DIM = 16


def test_zero_flow_returns_the_source_exactly():
    torch.manual_seed(0)
    source = torch.rand(2, 5, 24, 40)
    out = warp(source, torch.zeros(2, 2, 24, 40))
    torch.testing.assert_close(out, source, rtol=0, atol=1e-6)
    # a flow of one pixel to the right reads the left neighbour's value one column further
    shifted = warp(source, torch.full((2, 2, 24, 40), 0.0).index_fill_(1, torch.tensor([0]), 2.0 / 40))
    torch.testing.assert_close(shifted[..., :-1], source[..., 1:], rtol=0, atol=1e-5)


def _fusion_block(mask_bias: float) -> FusionBlock:
    torch.manual_seed(0)
    block = FusionBlock(8, ID_DIM, 4)
    with torch.no_grad():  # M = sigmoid(bias): 1 or 0 everywhere
        block.mask_conv.weight.zero_()
        block.mask_conv.bias.fill_(mask_bias)
    return block


@pytest.mark.parametrize("mask_bias, path", [(100.0, "motion"), (-100.0, "identity")])
def test_fusion_block_with_a_saturated_mask_returns_one_path(mask_bias, path):
    block = _fusion_block(mask_bias)
    torch.manual_seed(1)
    h_in, z_id, warped = torch.randn(2, 8, 16, 16), torch.randn(2, ID_DIM), torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out = block(h_in, z_id, warped)
        h_id = block.identity_path(h_in, z_id)
        expected = block.motion_path(h_id, warped) if path == "motion" else h_id
        other = h_id if path == "motion" else block.motion_path(h_id, warped)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert (out - other).abs().max() > 1e-2  # the two paths differ, so the test can fail


class TestMotionEncoder(ModelTesterMixin):
    def build(self):
        return MotionEncoder(MotionEncoderConfig(8, 32, 3, 24), 9)

    def inputs(self, batch_size):
        return (torch.randn(batch_size, 9, SIZE, SIZE),)

    def expected_shapes(self, batch_size):
        return [(batch_size, 24)]

    def test_code_is_unit_length(self):
        with torch.no_grad():
            z = self.seeded_model().eval()(*self.seeded_inputs())
        torch.testing.assert_close(z.norm(dim=1), torch.ones(len(z)))


class TestFlowNetwork(ModelTesterMixin):
    def build(self):
        net = FlowNetwork(FlowNetworkConfig(8, 32, 3), 9, 24)
        with torch.no_grad():  # the heads start at zero; give them weights so every gradient flows
            for head in (net.flow_head, net.occlusion_head):
                head.weight.normal_(0, 0.01)
        return net

    def inputs(self, batch_size):
        return torch.randn(batch_size, 9, SIZE, SIZE), torch.nn.functional.normalize(torch.randn(batch_size, 24), dim=1)

    def expected_shapes(self, batch_size):
        return [(batch_size, 2, SIZE, SIZE), (batch_size, 1, SIZE, SIZE)]

    def test_untrained_flow_is_zero(self):
        torch.manual_seed(0)
        flow, occlusion = FlowNetwork(FlowNetworkConfig(8, 32, 3), 9, 24)(*self.seeded_inputs())
        assert torch.equal(flow, torch.zeros_like(flow)) and (occlusion > 0.9).all()

    def test_onnx_export(self, tmp_path):
        onnx = pytest.importorskip("onnx")
        ort = pytest.importorskip("onnxruntime")
        model = self.seeded_model().eval()
        inputs = self.seeded_inputs()
        path = tmp_path / "flow.onnx"
        torch.onnx.export(model, inputs, str(path), input_names=["x_in", "z_w"], output_names=["flow", "occlusion"],
                          dynamo=False)
        onnx.checker.check_model(onnx.load(str(path)))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        flow, occlusion = session.run(None, {"x_in": inputs[0].numpy(), "z_w": inputs[1].numpy()})
        with torch.no_grad():
            ref_flow, ref_occlusion = model(*inputs)
        torch.testing.assert_close(torch.from_numpy(flow), ref_flow, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(occlusion), ref_occlusion, atol=1e-4, rtol=1e-4)


class TestRefinementNetwork(ModelTesterMixin):
    def build(self):
        return RefinementNetwork(RefinementNetworkConfig(8, 32, 2, 1, 8), ID_DIM)

    def inputs(self, batch_size):
        return (
            torch.rand(batch_size, 3, SIZE, SIZE) * 2 - 1,  # source image
            torch.randn(batch_size, 2, SIZE, SIZE) * 0.05,  # flow
            torch.rand(batch_size, 1, SIZE, SIZE),  # occlusion
            torch.rand(batch_size, 3, SIZE, SIZE) * 2 - 1,  # warped image
            torch.nn.functional.normalize(torch.randn(batch_size, ID_DIM), dim=1),
        )

    def forward(self, model, inputs):
        source, flow, occlusion, warped, z_id = inputs
        return [model(None, flow, occlusion, warped, z_id, source_image=source)]

    def expected_shapes(self, batch_size):
        return [(batch_size, 3, SIZE, SIZE)]

    def test_cached_source_features_give_the_same_frame(self):
        model = self.seeded_model().eval()
        source, flow, occlusion, warped, z_id = self.seeded_inputs()
        with torch.no_grad():
            cached = model(model.encode_source(source), flow, occlusion, warped, z_id)
            direct = model(None, flow, occlusion, warped, z_id, source_image=source)
        torch.testing.assert_close(cached, direct, rtol=0, atol=0)


class TestPatchDiscriminator(ModelTesterMixin):
    def build(self):
        return MultiScalePatchDiscriminator(PatchDiscriminatorConfig(8, 32, 2, 2), 6)

    def inputs(self, batch_size):
        return (torch.randn(batch_size, 6, SIZE, SIZE),)

    def forward(self, model, inputs):
        return [features[-1] for features in model(*inputs)]  # the patch logits of every scale

    def expected_shapes(self, batch_size):
        return [(batch_size, 1, 6, 6), (batch_size, 1, 2, 2)]  # 32 -> 16 -> 8 -> 7 -> 6; 16 -> 8 -> 4 -> 3 -> 2
