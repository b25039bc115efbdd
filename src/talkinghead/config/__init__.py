"""Configuration schemas (dataclasses) and YAML loading with ``key=value`` overrides."""

from talkinghead.config.base import (
    default_of,
    CONFIG_KINDS,
    ConfigError,
    dump_yaml,
    flatten,
    from_dict,
    load_config,
    nest,
    parse_overrides,
    register_config,
    to_dict,
)
from talkinghead.config import lsr as _lsr  # noqa: F401  (registers its config kinds)
from talkinghead.config import metaportrait as _metaportrait  # noqa: F401  (registers its config kinds)
from talkinghead.config import fsth as _fsth  # noqa: F401  (registers its config kinds)
from talkinghead.config import upscale as _upscale  # noqa: F401  (registers kind: upscale)
from talkinghead.config.training import DataConfig, StageSchedule, TrainerConfig
from talkinghead.config.prepare import PrepareConfig

__all__ = [
    "CONFIG_KINDS",
    "ConfigError",
    "DataConfig",
    "PrepareConfig",
    "StageSchedule",
    "TrainerConfig",
    "default_of",
    "dump_yaml",
    "flatten",
    "from_dict",
    "load_config",
    "nest",
    "parse_overrides",
    "register_config",
    "to_dict",
]
