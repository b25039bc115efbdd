"""The landmark representations a model can read, and how many channels each has.

``fsth`` and ``dense`` are drawings (three colour channels). ``dense_mesh`` is the ``dense``
drawing followed by two coordinate fields of the face mesh (``talkinghead.data.mesh_fields``):

    channels 0-2   the dense drawing, in [-1, 1]
    channels 3-4   forward field: for each pixel of this frame, the (x, y) of the same face
                   point on the canonical mesh, normalised to [-1, 1]
    channels 5-6   inverse field: for each pixel of the canonical mesh, the (x, y) of the same
                   face point in this frame, normalised to [-1, 1]

Sampling a source's inverse field at a driving frame's forward field gives, for every
driving pixel, where the same face point is in the source: a dense correspondence (the
piecewise-affine landmark warp) a model can use as a prior flow.
"""

from __future__ import annotations

from typing import Literal

LandmarkStyle = Literal["fsth", "dense", "dense_mesh"]

STYLE_CHANNELS: dict[str, int] = {"fsth": 3, "dense": 3, "dense_mesh": 7}

DRAWING = slice(0, 3)
FORWARD_FIELD = slice(3, 5)
INVERSE_FIELD = slice(5, 7)


def style_channels(style: str) -> int:
    """Channels of one landmark image of ``style``."""
    try:
        return STYLE_CHANNELS[style]
    except KeyError:
        raise ValueError(f"unknown landmark style {style!r}; choose one of {sorted(STYLE_CHANNELS)}") from None


def has_mesh_fields(style: str) -> bool:
    """Whether landmark images of ``style`` carry the mesh's coordinate fields."""
    return style == "dense_mesh"
