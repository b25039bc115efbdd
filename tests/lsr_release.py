"""A release folder of the tiny LSR architecture with seeded random weights, for tests."""

from __future__ import annotations

from pathlib import Path

import torch

from talkinghead.config import PrepareConfig, load_config, to_dict
from talkinghead.models.lsr import METHOD, build_networks
from talkinghead.weights.release import save_release

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "lsr" / "tiny.yaml"


def tiny_release(folder: Path, seed: int = 0, **model_overrides) -> Path:
    """Write all five networks of the tiny (64 px) architecture, seeded, as a release."""
    config = load_config(TINY_CONFIG, kind="lsr").model
    for key, value in model_overrides.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    networks = build_networks(config)
    info = {"method": METHOD, "model": to_dict(config), "prepare": to_dict(PrepareConfig(size=config.image_size))}
    return save_release(folder, info, networks)
