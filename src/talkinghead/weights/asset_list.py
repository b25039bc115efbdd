"""``talkinghead weights list``: every pretrained asset, whether it is installed, and from where."""

from __future__ import annotations

from talkinghead.weights import registry


def _state(name: str, asset: registry.WeightsAsset) -> str:
    """``present (verified)``, ``present (bundled with talkinghead)``, ``missing``, ..."""
    if not registry.is_available(name):
        return "missing"
    path = registry.installed_path(name)
    if path == registry.bundled_copy(name):
        return "present (bundled with talkinghead)"
    if path != registry.asset_path(name):
        return f"present (the copy in {asset.package_file[0]})"
    record = registry.recorded_checksum(name)
    return f"present ({record['status']})" if record else "present (not installed by `weights add`: unchecked)"


def describe_assets() -> str:
    """The weights folder and two lines per asset: its state and file, then what it is and what uses it."""
    lines = [f"weights folder: {registry.weights_dir()}  (set TALKINGHEAD_HOME to move it)"]
    for name, asset in registry.ASSETS.items():
        lines.append(f"  {name:<14} {_state(name, asset):<22} {asset.filename}")
        lines.append(f"  {'':<14} {asset.description}; used for {asset.used_for}")
    return "\n".join(lines)
