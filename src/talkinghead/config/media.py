"""Media defaults every layer shares, each defined once here."""

from __future__ import annotations

# The frame rate assumed where a source records none: folders of images, and video streams
# whose header carries no rate. The fps options of prepare, animate and upscale default to it.
DEFAULT_FPS = 25.0
