"""``export_checkpoint_release`` without the command line: storage precision and generator-only releases."""

from __future__ import annotations

import pytest
import torch

from talkinghead.models.lsr import METHOD
from talkinghead.models.registry import get_method
from talkinghead.training.release_export import ReleaseExportOptions, export_checkpoint_release
from talkinghead.weights.release import cast_state_dicts, load_release

from lsr_release import tiny_release


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return tiny_release(tmp_path_factory.mktemp("lsr") / "release")


def test_float16_generators_only_release_loads_back_close_to_the_original(release, tmp_path):
    out = export_checkpoint_release(release, tmp_path / "half",
                                    ReleaseExportOptions(dtype="float16", generators_only=True))
    config, states = load_release(out)
    _, original = load_release(release)
    inference = set(get_method(METHOD).inference_networks)
    assert set(states) == inference and set(original) > inference  # the discriminator is left out
    assert config["stored_dtype"] == "float16"
    for name, state in states.items():
        for key, value in state.items():
            source = original[name][key]
            if source.is_floating_point():
                assert value.dtype == torch.float16
                torch.testing.assert_close(value.float(), source, rtol=1e-3, atol=1e-3)
            else:
                assert torch.equal(value, source)


def test_float32_export_keeps_every_network_bit_identical(release, tmp_path):
    _, states = load_release(export_checkpoint_release(release, tmp_path / "same"))
    _, original = load_release(release)
    assert set(states) == set(original)
    assert all(torch.equal(states[n][k], original[n][k]) for n in original for k in original[n])


def test_cast_keeps_integer_buffers_and_refuses_other_precisions():
    states = {"net": {"w": torch.ones(2), "count": torch.tensor([3], dtype=torch.long)}}
    cast = cast_state_dicts(states, "bfloat16")
    assert cast["net"]["w"].dtype == torch.bfloat16 and cast["net"]["count"].dtype == torch.long
    with pytest.raises(ValueError, match="float16"):
        cast_state_dicts(states, "int8")
