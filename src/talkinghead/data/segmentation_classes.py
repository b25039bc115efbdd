"""The semantic classes of oracle segmentation maps (CelebAMask-HQ, 19 classes).

Both oracles write labels in this one label space, so a layout generator pre-trained on
one can be compared with the other: the face-parsing network predicts all 19 classes,
the landmark-derived oracle uses the subset it can infer (no ears, glasses or hats).
``l_``/``r_`` are the subject's left and right (``l_eye`` appears on the image's right).
"""

from __future__ import annotations

import numpy as np

CELEBAMASK_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "eye_g",
    "l_ear",
    "r_ear",
    "ear_r",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "neck",
    "neck_l",
    "cloth",
    "hair",
    "hat",
)

CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CELEBAMASK_CLASSES)}

# One RGB colour per class for visualisation (contact sheets, training grids).
PALETTE = np.array(
    [
        [0, 0, 0],
        [204, 153, 102],
        [102, 51, 0],
        [153, 76, 0],
        [0, 102, 255],
        [0, 204, 255],
        [200, 200, 200],
        [255, 153, 204],
        [255, 102, 178],
        [255, 255, 0],
        [255, 102, 0],
        [102, 0, 51],
        [255, 0, 0],
        [178, 0, 0],
        [153, 204, 102],
        [0, 153, 76],
        [51, 102, 153],
        [102, 51, 153],
        [255, 204, 0],
    ],
    dtype=np.uint8,
)


def colorize(labels: np.ndarray) -> np.ndarray:
    """(H, W) class indices to an (H, W, 3) uint8 RGB picture."""
    return PALETTE[np.clip(labels, 0, len(PALETTE) - 1)]
