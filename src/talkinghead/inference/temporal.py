"""Sliding windows over a stream of synthesised frames, for a method's temporal post-processing.

A method whose inference model has ``temporal_radius = r > 0`` (MetaPortrait's temporal
super-resolution, say) refines each output frame from itself and its ``r`` neighbours on
each side. :class:`TemporalWindow` holds just enough frames to build those windows as
the stream goes, repeating the first and last frames at the ends of the video, so memory
stays bounded by ``2r + 1`` frames plus the ones waiting for their future neighbours.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch


class TemporalWindow:
    """Turns ``(item, frame)`` pushes into ``(item, window)`` pairs once each frame's neighbours are known.

    Args:
        radius: neighbours on each side (``r``); each window is (2r + 1, ...) frames.
    """

    def __init__(self, radius: int):
        if radius < 1:
            raise ValueError(f"radius must be >= 1, got {radius}")
        self.radius = radius
        self._frames: deque[torch.Tensor] = deque()  # frames from index self._first on
        self._items: deque[Any] = deque()  # items still waiting for their window
        self._first = 0  # stream index of self._frames[0]
        self._next = 0  # stream index of self._items[0]

    def _window(self, index: int, last: int) -> torch.Tensor:
        picks = [min(max(i, 0), last) - self._first for i in range(index - self.radius, index + self.radius + 1)]
        return torch.stack([self._frames[max(p, 0)] for p in picks])

    def _emit(self, last: int, upto: int) -> list[tuple[Any, torch.Tensor]]:
        out = []
        while self._items and self._next <= upto:
            out.append((self._items.popleft(), self._window(self._next, last)))
            self._next += 1
        while self._first < self._next - self.radius:  # frames no later window needs
            self._frames.popleft()
            self._first += 1
        return out

    def push(self, item: Any, frame: torch.Tensor) -> list[tuple[Any, torch.Tensor]]:
        """Add the next frame; returns the windows that became complete (oldest first)."""
        self._frames.append(frame)
        self._items.append(item)
        newest = self._first + len(self._frames) - 1
        return self._emit(newest, newest - self.radius)

    def flush(self) -> list[tuple[Any, torch.Tensor]]:
        """The windows of the frames still waiting, the last frame repeated past the end."""
        newest = self._first + len(self._frames) - 1
        return self._emit(newest, newest)
