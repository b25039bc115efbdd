"""Oracle segmentation with the BiSeNet face parser, run at two resolutions (LSR appendix A.1).

LSR observes that the face parser (trained on 512x512 CelebAMask-HQ) labels large regions
(hair, neck, clothes) best at the VoxCeleb2 resolution and small parts (eyes, nose, mouth)
best after upsampling to 512x512, so each frame is segmented "twice at 256x256 and 512x512
resolutions" and "the coarse and fine semantic classes" of both results are merged.

Merge rule (:func:`merge_coarse_fine`), after both label maps are resized to the input
size with nearest-neighbour interpolation:

* a pixel that the 512 run labels with a fine class (:data:`FINE_CLASSES`) takes that label;
* a pixel that the 256 run labels with a coarse class (:data:`COARSE_CLASSES`) keeps it,
  unless the first rule applies;
* a pixel that the 256 run labels with a fine class but the 512 run does not takes the
  512 run's (coarse) label, so every fine-class pixel of the result comes from the 512 run.
"""

from __future__ import annotations


import cv2
import numpy as np
import torch

from talkinghead.data.segmentation_classes import CELEBAMASK_CLASSES, CLASS_INDEX
from talkinghead.models.face_parsing import BiSeNetFaceParser
from talkinghead.weights import load_into

# Classes taken from the low-resolution (256) run: large regions.
COARSE_CLASSES: tuple[str, ...] = (
    "background", "skin", "l_ear", "r_ear", "ear_r", "neck", "neck_l", "cloth", "hair", "hat",
)
# Classes taken from the high-resolution (512) run: small facial parts.
FINE_CLASSES: tuple[str, ...] = (
    "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "nose", "mouth", "u_lip", "l_lip",
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def merge_coarse_fine(
    coarse: np.ndarray, fine: np.ndarray, fine_classes: tuple[str, ...] = FINE_CLASSES
) -> np.ndarray:
    """Merge the 256 (coarse) and 512 (fine) label maps by the module's rule.

    Args:
        coarse: (H, W) integer labels of the low-resolution run, at the output size.
        fine: (H, W) integer labels of the high-resolution run, at the output size.
        fine_classes: names of the classes trusted only from ``fine``.

    Returns:
        (H, W) uint8 labels: ``fine`` where either map has a fine class, else ``coarse``.
    """
    if coarse.shape != fine.shape:
        raise ValueError(f"label maps differ in size: coarse {coarse.shape}, fine {fine.shape}")
    fine_ids = np.array([CLASS_INDEX[name] for name in fine_classes])
    use_fine = np.isin(fine, fine_ids) | np.isin(coarse, fine_ids)
    return np.where(use_fine, fine, coarse).astype(np.uint8)


class FaceParsingSegmenter:
    """19-class CelebAMask-HQ labels for a face crop, merged from two resolutions.

    Args:
        network: a :class:`BiSeNetFaceParser` with 19 classes (eval mode is set here).
        device: where the network runs.
        coarse_size: side of the coarse run (256 in LSR).
        fine_size: side of the fine run (512 in LSR, the parser's training size).
    """

    def __init__(
        self,
        network: BiSeNetFaceParser,
        device: str | torch.device = "cpu",
        coarse_size: int = 256,
        fine_size: int = 512,
    ):
        if network.num_classes != len(CELEBAMASK_CLASSES):
            raise ValueError(
                f"the face parser must predict the {len(CELEBAMASK_CLASSES)} CelebAMask-HQ classes, "
                f"got {network.num_classes}"
            )
        for size in (coarse_size, fine_size):
            if size <= 0 or size % 32:
                raise ValueError(f"segmentation sizes must be positive multiples of 32, got {size}")
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.coarse_size = coarse_size
        self.fine_size = fine_size
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_registry(cls, device: str | torch.device = "cpu") -> FaceParsingSegmenter:
        """Load the installed ``face_parsing`` weights (``79999_iter.pth``) strictly.

        Raises:
            MissingWeightsError: the file is not installed (the message says how to install it).
            CorruptWeightsError: the file cannot be read.
            WeightsError: the file holds another network's weights.
        """
        network = BiSeNetFaceParser(num_classes=len(CELEBAMASK_CLASSES))
        load_into(network, "face_parsing", "segmentation --segmentation face-parsing")
        return cls(network, device=device)

    @torch.no_grad()
    def labels_at(self, image_rgb: np.ndarray, size: int) -> np.ndarray:
        """Arg-max labels of the parser run on the image resized to ``size`` x ``size``.

        Returns:
            (size, size) uint8 labels.
        """
        height, width = image_rgb.shape[:2]
        # Area averaging when shrinking (like PIL's antialiased resize of the original
        # demo), bilinear when enlarging.
        shrinking = size < min(height, width)
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        resized = cv2.resize(image_rgb, (size, size), interpolation=interpolation)  # (s, s, 3)
        x = torch.from_numpy(resized).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
        logits = self.network((x - self._mean) / self._std)  # (1, 19, s, s)
        return logits[0].argmax(dim=0).to(torch.uint8).cpu().numpy()

    def segment(self, image_rgb: np.ndarray) -> np.ndarray:
        """CelebAMask-HQ labels of a face crop at its own size.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.

        Returns:
            (H, W) uint8 class indices (see :data:`talkinghead.data.segmentation_classes.CELEBAMASK_CLASSES`).
        """
        is_rgb = isinstance(image_rgb, np.ndarray) and image_rgb.ndim == 3 and image_rgb.shape[2] == 3
        if not (is_rgb and image_rgb.dtype == np.uint8):
            raise ValueError(
                "FaceParsingSegmenter expects an (H, W, 3) uint8 RGB image, got "
                f"{getattr(image_rgb, 'dtype', type(image_rgb))} of shape {getattr(image_rgb, 'shape', None)}"
            )
        height, width = image_rgb.shape[:2]
        coarse = _resize_labels(self.labels_at(image_rgb, self.coarse_size), height, width)
        fine = _resize_labels(self.labels_at(image_rgb, self.fine_size), height, width)
        return merge_coarse_fine(coarse, fine)


def _resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) uint8 labels -> (height, width) with nearest-neighbour interpolation."""
    if labels.shape == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
