"""Feature-map schedules shared by the networks of every method (LSR A.1's rule: start small, double per level, cap)."""

from __future__ import annotations


def level_channels(base_channels: int, max_channels: int, num_levels: int) -> list[int]:
    """Feature maps of resolution level i = 0 .. num_levels - 1: ``base * 2**i`` capped at ``max``.

    Level 0 is the full resolution; level i is ``2**i`` times smaller.
    """
    if base_channels < 1 or max_channels < base_channels:
        raise ValueError(f"need 1 <= base_channels <= max_channels, got {base_channels} and {max_channels}")
    return [min(base_channels * 2**level, max_channels) for level in range(num_levels)]
