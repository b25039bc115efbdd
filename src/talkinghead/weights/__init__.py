"""Registry, verification and safe loading of pretrained weights (no run-time downloads)."""

from talkinghead.weights.registry import (
    ASSETS,
    ChecksumError,
    CorruptWeightsError,
    MissingWeightsError,
    WeightsAsset,
    WeightsError,
    add,
    asset_path,
    download,
    get_asset,
    home_dir,
    is_available,
    load_asset_state_dict,
    load_state_dict,
    require,
    verify,
)

__all__ = [
    "ASSETS",
    "ChecksumError",
    "CorruptWeightsError",
    "MissingWeightsError",
    "WeightsAsset",
    "WeightsError",
    "add",
    "asset_path",
    "download",
    "get_asset",
    "home_dir",
    "is_available",
    "load_asset_state_dict",
    "load_state_dict",
    "require",
    "verify",
]
