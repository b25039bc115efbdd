"""FSTH's networks: shapes, the projection score (Eq. 5, 8), spectral norm everywhere, paper-size counts."""

from __future__ import annotations

import pytest
import torch
from model_test_mixin import ModelTesterMixin
from torch import nn

from talkinghead.config.fsth import FSTHModelConfig
from talkinghead.layers.self_attention import SelfAttention
from talkinghead.layers.spectral import layers_without_spectral_norm
from talkinghead.models.fsth import FSTHModel, adain_dim, build_networks
from talkinghead.models.fsth_embedder import embed_frames
from talkinghead.models.projection_discriminator import projection_score
from talkinghead.utils.modules import parameter_counts

SIZE = 32


def attention_on(net: nn.Module) -> nn.Module:
    """Self-attention starts as the identity (gamma = 0, no gradient to q, k, v); open it for the mixin's checks."""
    for m in net.modules():
        if isinstance(m, SelfAttention):
            m.gamma.data.fill_(0.5)
    return net


def tiny_config(**overrides) -> FSTHModelConfig:
    values = dict(
        image_size=SIZE,
        embedder=dict(base_channels=8, max_channels=32, num_down_blocks=3, attention_after=2),
        generator=dict(base_channels=8, max_channels=32, num_down_blocks=2, num_bottleneck_blocks=2,
                       attention_before_down=1, attention_after_up=1),
        discriminator=dict(num_videos=5, extra_blocks=1),
    )
    values.update(overrides)
    from talkinghead.config import from_dict

    return from_dict(FSTHModelConfig, values)


class TestEmbedder(ModelTesterMixin):
    def build(self):
        return attention_on(build_networks(tiny_config())["embedder"])

    def inputs(self, b):
        return (torch.randn(b, 6, SIZE, SIZE),)

    def expected_shapes(self, b):
        return [(b, 32)]


class TestGenerator(ModelTesterMixin):
    def build(self):
        return attention_on(build_networks(tiny_config())["generator"])

    def inputs(self, b):
        return torch.randn(b, 3, SIZE, SIZE), torch.randn(b, adain_dim(tiny_config()))

    def expected_shapes(self, b):
        return [(b, 3, SIZE, SIZE)]

    unused_parameters = frozenset({"projection.parametrizations.weight.original"})  # P runs in project()


class TestDiscriminator(ModelTesterMixin):
    def build(self):
        return attention_on(build_networks(tiny_config())["discriminator"])

    def inputs(self, b):
        return torch.randn(b, 6, SIZE, SIZE), torch.arange(b) % 5

    def forward(self, model, inputs):
        score, feats = model(*inputs)
        return [score, *feats]

    def expected_shapes(self, b):
        # V: three down blocks (16, 8, 4 px) and the extra block at 4 px
        return [(b,), (b, 8, 16, 16), (b, 16, 8, 8), (b, 32, 4, 4), (b, 32, 4, 4)]


def test_generator_reads_the_landmarks_and_the_person_parameters():
    torch.manual_seed(0)
    generator = build_networks(tiny_config())["generator"].eval()
    for attention in (generator.down_attention, generator.up_attention):
        attention.gamma.data.fill_(0.5)  # attention off at gamma = 0; switch it on to see it runs
    y, psi = torch.randn(2, 3, SIZE, SIZE), torch.randn(2, generator.adain_dim)
    with torch.no_grad():
        out = generator(y, psi)
        assert out.abs().max() <= 1.0
        assert not torch.allclose(out, generator(y, psi + 0.5))
        assert not torch.allclose(out, generator(torch.flip(y, dims=[-1]), psi))
        assert generator.project(torch.randn(3, 32)).shape == (3, generator.adain_dim)


def test_adain_dim_without_building_matches_the_generator():
    for config in (tiny_config(), FSTHModelConfig()):
        assert adain_dim(config) == build_networks(config)["generator"].adain_dim
    # paper size by hand: 4 bottleneck blocks (2 x 512 each), up blocks 512->256->128->64->64, final norm 64
    assert adain_dim(FSTHModelConfig()) == 2 * (4 * (512 + 512) + (512 + 256) + (256 + 128) + (128 + 64) + (64 + 64) + 64)


def test_projection_score_is_v_dot_w_plus_b_on_hand_made_tensors():
    v = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    w = torch.tensor([[0.5, 0.0, -1.0], [2.0, 2.0, 2.0]])
    score = projection_score(v, w, torch.tensor(0.25))
    assert torch.allclose(score, torch.tensor([1 * 0.5 + 0 - 3 + 0.25, 0 - 2 + 1 + 0.25]))


def test_discriminator_scores_with_w_i_plus_w0_or_with_a_given_w_prime():
    torch.manual_seed(0)
    d = build_networks(tiny_config())["discriminator"].eval()
    x = torch.randn(2, 6, SIZE, SIZE)
    index = torch.tensor([3, 1])
    with torch.no_grad():
        v, _ = d.body.features(x)
        score, _ = d(x, video_index=index)
        expected = (v * (d.video_embeddings[index] + d.w0)).sum(1) + d.bias  # Eq. 5
        assert torch.allclose(score, expected, atol=1e-5)
        w_prime = torch.randn(32)
        score8, _ = d(x, realism=w_prime)
        assert torch.allclose(score8, v @ w_prime + d.bias, atol=1e-5)  # Eq. 8
    with pytest.raises(ValueError, match="video_index"):
        d(x)


def test_every_conv_and_linear_layer_is_spectrally_normalised():
    networks = build_networks(tiny_config())
    for name, net in networks.items():
        assert layers_without_spectral_norm(net) == [], name
        assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules()) > 5
    plain = nn.Sequential(nn.Conv2d(3, 3, 1))
    assert layers_without_spectral_norm(plain) == ["0"]  # the check can fail


def test_self_attention_sits_where_the_paper_puts_it():
    networks = build_networks(FSTHModelConfig())
    counts = {name: sum(isinstance(m, SelfAttention) for m in net.modules()) for name, net in networks.items()}
    assert counts == {"embedder": 1, "generator": 2, "discriminator": 1}
    g = networks["generator"]
    assert g.down_attention.query.in_channels == 256  # before the last down block: 32 x 32 at 256 px
    assert g.up_attention.query.in_channels == 128  # after two up blocks: 64 x 64 at 256 px
    assert networks["embedder"].attention.query.in_channels == 256  # after three down blocks: 32 x 32


def test_encode_averages_k_embeddings_and_projects_them():
    torch.manual_seed(0)
    model = FSTHModel(tiny_config()).eval()
    images, landmarks = torch.randn(2, 3, 3, SIZE, SIZE), torch.randn(2, 3, 3, SIZE, SIZE)
    state = model.encode(images, landmarks)
    per_frame, mean = embed_frames(model.embedder, images, landmarks)
    assert per_frame.shape == (2, 3, 32)
    assert torch.allclose(state["embedding"], per_frame.mean(1)) and torch.allclose(mean, state["embedding"])
    assert torch.allclose(state["adain"], model.generator.project(state["embedding"]))
    assert {k: tuple(v.shape[1:]) for k, v in state.items()} == {k: s.shape for k, s in model.person_state_spec().items()}
    assert model(landmarks[:, 0], state).shape == (2, 3, SIZE, SIZE)


def test_paper_size_parameter_counts_are_near_the_papers():
    networks = build_networks(FSTHModelConfig())
    counts = parameter_counts(networks)
    v = counts["discriminator"] - networks["discriminator"].video_embeddings.numel()  # D without W
    # paper (§3.4): embedder 15M, generator 38M, D's convolutional part 20M
    assert 14e6 < counts["embedder"] < 16e6
    assert 30e6 < counts["generator"] < 40e6
    assert 19e6 < v < 21e6
