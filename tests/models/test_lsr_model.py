"""The LSR model container and loading trained weights of any method (release folder / checkpoint)."""

from __future__ import annotations

import pytest
import torch

from talkinghead.config import to_dict
from talkinghead.config.lsr import (
    DiscriminatorConfig,
    EncoderConfig,
    ImageGeneratorConfig,
    LayoutGeneratorConfig,
    LSRModelConfig,
)
from talkinghead.models.lsr import LSRModel, activate_layout, build_networks, encode_latent, synthesize
from talkinghead.models.pretrained import PretrainedError, load_pretrained
from talkinghead.models.registry import UnknownMethodError
from talkinghead.weights.checkpoint import CheckpointManager
from talkinghead.weights.release import save_release


def tiny_model_config() -> LSRModelConfig:
    return LSRModelConfig(
        image_size=32,
        latent_dim=16,
        encoder=EncoderConfig(base_channels=8, max_channels=16, num_down_blocks=3, pooling="mean"),
        layout_generator=LayoutGeneratorConfig(base_channels=8, max_channels=16, num_down_blocks=3, layout_channels=5),
        image_generator=ImageGeneratorConfig(base_channels=8, max_channels=16, spade_hidden_channels=8,
                                             num_up_blocks=3, num_middle_blocks=1),
        discriminator=DiscriminatorConfig(base_channels=8, max_channels=16, num_down_blocks=3),
    )


def test_k_shot_latents_are_the_mean_of_the_per_image_codes():
    torch.manual_seed(0)
    encoder = build_networks(tiny_model_config())["layout_encoder"].eval()
    images, landmarks = torch.randn(2, 3, 3, 32, 32), torch.randn(2, 3, 3, 32, 32)
    z = encode_latent(encoder, images, landmarks)
    singles = torch.stack([encode_latent(encoder, images[:, i : i + 1], landmarks[:, i : i + 1]) for i in range(3)])
    torch.testing.assert_close(z, singles.mean(0))
    with pytest.raises(ValueError, match="expected \\(b, k, c, h, w\\)"):
        encode_latent(encoder, images[:, 0], landmarks[:, 0])


def test_model_encodes_once_and_synthesises_frames():
    torch.manual_seed(0)
    model = LSRModel(tiny_model_config()).eval()
    assert model.network_names == ["layout_encoder", "style_encoder", "layout_generator", "image_generator"]
    state = model.encode(torch.randn(1, 2, 3, 32, 32), torch.randn(1, 2, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in state.items()} == {"z_layout": (1, 16), "z_style": (1, 16)}
    assert list(state) == list(model.person_state_spec())
    landmarks = torch.randn(4, 3, 32, 32)
    image = model(landmarks, model.expand_state({k: v[0] for k, v in state.items()}, 4))
    assert image.shape == (4, 3, 32, 32) and image.abs().max() <= 1
    out = synthesize(model.layout_generator, model.image_generator, landmarks, state["z_layout"].expand(4, -1),
                     state["z_style"].expand(4, -1), layout_activation="softmax")
    assert torch.equal(out.image, image)
    assert out.layout.shape == (4, 5, 32, 32)
    torch.testing.assert_close(out.layout.sum(1), torch.ones(4, 32, 32))  # softmax layout
    assert out.rgb is None
    assert torch.equal(activate_layout(out.layout_logits, "none"), out.layout_logits)


def test_weights_load_from_a_release_and_from_a_checkpoint(tmp_path):
    config = tiny_model_config()
    torch.manual_seed(1)
    networks = build_networks(config)
    release = save_release(tmp_path / "release", {"method": "lsr", "model": to_dict(config)}, networks)
    loaded = load_pretrained(release)
    assert loaded.kind == "release" and loaded.config == config
    rebuilt = loaded.build(["image_generator"])["image_generator"]
    for key, value in networks["image_generator"].state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)

    ema = {name: {"module": {k: v + 1 for k, v in networks[name].state_dict().items()}} for name in ("style_encoder",)}
    state = {"method": "lsr", "config": {"model": to_dict(config)}, "stage": "full", "stage_step": 3,
             "global_step": 3, "networks": {n: net.state_dict() for n, net in networks.items()}, "ema": ema}
    CheckpointManager(tmp_path / "run").save(state, 3)
    from_ema = load_pretrained(tmp_path / "run")  # a run folder: its latest checkpoint
    raw = load_pretrained(tmp_path / "run", use_ema=False)
    key = next(iter(ema["style_encoder"]["module"]))
    assert torch.equal(from_ema.state_dicts["style_encoder"][key], ema["style_encoder"]["module"][key])
    assert torch.equal(raw.state_dicts["style_encoder"][key], networks["style_encoder"].state_dict()[key])
    assert from_ema.info["weights"] == "ema" and raw.info["weights"] == "raw"


def test_loading_refuses_other_methods_and_mismatched_weights(tmp_path):
    config = tiny_model_config()
    networks = build_networks(config)
    other = save_release(tmp_path / "x2face", {"method": "x2face", "model": to_dict(config)}, networks)
    with pytest.raises(UnknownMethodError, match="method 'x2face', which this version"):
        load_pretrained(other)
    with pytest.raises(PretrainedError, match="holds a 'lsr' model, a 'fsth' model is needed"):
        load_pretrained(save_release(tmp_path / "lsr", {"method": "lsr", "model": to_dict(config)}, networks),
                        method="fsth")
    wider = to_dict(config)
    wider["latent_dim"] = 32
    bad = save_release(tmp_path / "bad", {"method": "lsr", "model": wider}, networks)
    with pytest.raises(PretrainedError, match="style_encoder weights do not fit"):
        load_pretrained(bad).build(["style_encoder"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainedError, match="neither a release folder"):
        load_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_pretrained(tmp_path / "missing")
