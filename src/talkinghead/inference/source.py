"""The source side of animation: a person's photos, cropped like training data, and their state.

Done once per person: every source photo is detected and cropped with the training
data's crop scheme, rasterised, and encoded by the method's inference model into its
*person state* (LSR: the K-shot latents of LSR Eq. 1 and 3). The first photo is the
*reference*: its landmarks are the base that relative motion deforms, and
``--paste-back`` blends the result into it.

A :class:`SourceEncoding` can be saved and loaded (``--save-source`` / ``--load-source``),
so a person is encoded once and animated many times. The file is safetensors (tensors
only, nothing executable) and records the method and a fingerprint of the model that
encoded it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talkinghead.config.prepare import PrepareConfig
from talkinghead.data.crop import (
    center_square_box,
    clip_crop_box,
    crop_image,
    points_to_crop,
    shift_inside,
)
from talkinghead.data.landmarks.base import LandmarkDetector
from talkinghead.data.landmarks.ibug68 import dense_to_ibug68
from talkinghead.data.rasterize import Rasterizer
from talkinghead.errors import TalkingHeadError
from talkinghead.inference.source_orientation import (
    MAX_ROLL_DEGREES,
    describe_turn,
    face_roll_degrees,
    is_upside_down,
    rotate_quarter_turns,
    upright_turns,
)
from talkinghead.utils.atomic import atomic_path

log = logging.getLogger(__name__)

# Format 2: the person state of any method (format 1 files, from before methods were
# pluggable, are refused with the advice to encode the source again).
SOURCE_FORMAT = 2
STATE_PREFIX = "state."
# A face crop narrower than this fraction of the model's size is enlarged so much that the result is blurry.
MIN_CROP_FRACTION = 0.75
REFERENCE_KEYS = ("photo", "crop", "box", "dense", "ibug68")


class SourceError(TalkingHeadError, ValueError):
    """A source photo that cannot be used, or a source file that does not fit the model."""


class FaceIndexError(SourceError):
    """A face index past the faces of a photo (``faces_found`` lets each front end name its own control)."""

    def __init__(self, message: str, *, name: str, face_index: int, faces_found: int):
        super().__init__(message)
        self.name, self.face_index, self.faces_found = name, face_index, faces_found


@dataclass
class SourceFace:
    """One source photo prepared for the model.

    Attributes:
        name: where it came from (file name or a caller's label).
        photo: (H, W, 3) uint8 RGB, the full-resolution photo.
        box: (4,) x0, y0, x1, y1 of the square crop in photo pixels (may pass the border).
        crop: (s, s, 3) uint8 RGB, the crop at the model's size.
        dense: (N, 3) float32 backend landmarks in crop pixels (N = 478 for mediapipe).
        ibug68: (68, 2) float32 iBUG landmarks in crop pixels.
        faces_found: how many faces the photo holds (the page and the log warn when > 1).
        face_index: which of them this is (ranked by size x detection confidence).
        roll_degrees: how far the face lay on its side before it was turned upright.
        turns: quarter turns counter-clockwise applied to the photo (0: it was upright).
    """

    name: str
    photo: np.ndarray
    box: np.ndarray
    crop: np.ndarray
    dense: np.ndarray
    ibug68: np.ndarray
    faces_found: int = 1
    face_index: int = 0
    roll_degrees: float = 0.0
    turns: int = 0

    @property
    def crop_side(self) -> float:
        """The side of the face crop in photo pixels."""
        return float(self.box[2] - self.box[0])

    def is_small_for(self, size: int) -> bool:
        """True when the crop must be enlarged so much for a ``size`` px model that the result is blurry."""
        return self.crop_side < MIN_CROP_FRACTION * size


@dataclass
class SourceEncoding:
    """A person encoded by a model: what animation needs from the source side.

    Attributes:
        state: the person state, ``{name: tensor}`` without a batch dimension, as the
            method's ``person_state_spec`` declares it (LSR: ``z_layout``, ``z_style``).
        method: the registered method of the encoding model.
        reference: the first source photo (motion base, paste-back target).
        source_names: every source photo that was encoded.
        model_fingerprint: :func:`model_fingerprint` of the encoding model.
    """

    state: dict[str, torch.Tensor]
    method: str
    reference: SourceFace
    source_names: list[str]
    model_fingerprint: str

    def save(self, path: str | Path) -> Path:
        """Write the encoding as one safetensors file (atomically)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ref = self.reference
        tensors = {
            f"{STATE_PREFIX}{name}": value.detach().float().cpu().contiguous() for name, value in self.state.items()
        }
        tensors.update({
            "photo": torch.from_numpy(np.ascontiguousarray(ref.photo)),
            "crop": torch.from_numpy(np.ascontiguousarray(ref.crop)),
            "box": torch.from_numpy(np.asarray(ref.box, dtype=np.float64)),
            "dense": torch.from_numpy(np.ascontiguousarray(ref.dense, dtype=np.float32)),
            "ibug68": torch.from_numpy(np.ascontiguousarray(ref.ibug68, dtype=np.float32)),
        })
        metadata = {
            "format": str(SOURCE_FORMAT),
            "method": self.method,
            "state_names": json.dumps(list(self.state)),
            "model_fingerprint": self.model_fingerprint,
            "reference_name": ref.name,
            "source_names": json.dumps(self.source_names),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SourceEncoding":
        """Read a file written by :meth:`save`; errors name the file and what to do."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise SourceError(f"{path}: no such source file; write one with --save-source")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as err:  # safetensors raises its own error types; name the file
            raise SourceError(
                f"{path}: cannot be read as a source file ({type(err).__name__}: {err}); it is truncated or "
                "not a --save-source file, encode the source again with --source ... --save-source"
            ) from err
        method, state = "", {}
        if metadata.get("format") == str(SOURCE_FORMAT):
            method = metadata.get("method", "")
            names = json.loads(metadata.get("state_names", "[]"))
            state = {name: tensors[f"{STATE_PREFIX}{name}"] for name in names if f"{STATE_PREFIX}{name}" in tensors}
            if len(state) != len(names):
                state = {}
        if not method or not state or not set(REFERENCE_KEYS) <= set(tensors):
            raise SourceError(
                f"{path}: is not a talkinghead source file of format {SOURCE_FORMAT} "
                f"(holds {sorted(tensors)}); encode the source again with --save-source"
            )
        reference = SourceFace(
            name=metadata.get("reference_name", path.name),
            photo=tensors["photo"].numpy(),
            box=tensors["box"].numpy(),
            crop=tensors["crop"].numpy(),
            dense=tensors["dense"].numpy(),
            ibug68=tensors["ibug68"].numpy(),
        )
        return cls(
            state=state,
            method=method,
            reference=reference,
            source_names=json.loads(metadata.get("source_names", "[]")),
            model_fingerprint=metadata.get("model_fingerprint", ""),
        )


def model_fingerprint(networks: dict[str, torch.nn.Module]) -> str:
    """A short hash of the networks' weights (as float32), to tie source files to a model."""
    digest = hashlib.sha256()
    for name in sorted(networks):
        for key, value in sorted(networks[name].state_dict().items()):
            digest.update(f"{name}.{key}".encode())
            digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def crop_box_for(face_box: np.ndarray, photo_shape: tuple[int, ...], prepare: PrepareConfig) -> np.ndarray:
    """The square crop of one face, with the crop scheme the training data used.

    A head box that reaches past the photo is shifted back inside it (a black band there
    would be copied into every result frame), as :func:`talkinghead.data.prepare` does.
    """
    if prepare.crop.mode == "head":
        box = clip_crop_box(np.asarray(face_box)[None], prepare.crop.scale, prepare.crop.vertical_offset)
        return shift_inside(box, photo_shape[1], photo_shape[0])
    return center_square_box(photo_shape[1], photo_shape[0])


def ibug68_points(dense: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG points from backend points: mapped from a mediapipe mesh, else the 68 themselves."""
    return dense_to_ibug68(dense) if dense.shape[0] >= 468 else np.asarray(dense[:, :2], dtype=np.float32)


def rasterizer_points(dense: np.ndarray, rasterizer: Rasterizer) -> np.ndarray:
    """The landmark array the model's rasteriser draws, from backend (dense) points."""
    return dense if rasterizer.landmarks == "dense" else ibug68_points(dense)


def _upright_if_upside_down(photo: np.ndarray, faces: list, name: str, landmarker: LandmarkDetector):
    """The photo and its faces, turned 180° with a warning when the face is upside down."""
    turned = rotate_quarter_turns(photo, 2)
    again = landmarker.detect(turned)
    if not is_upside_down(faces[0].confidence, again[0].confidence if again else None):
        return photo, faces
    log.warning(
        "%s: the face is upside down (the detector is surer of it turned 180°: confidence %.2f vs %.2f); the "
        "photo was turned 180° to animate it upright. Save it upright to silence this warning",
        name, again[0].confidence, faces[0].confidence,
    )
    return turned, again


def prepare_source_face(
    photo: np.ndarray,
    name: str,
    landmarker: LandmarkDetector,
    prepare: PrepareConfig,
    size: int,
    *,
    face_index: int = 0,
) -> SourceFace:
    """Detect the face in a source photo and crop it like the training frames.

    A face lying on its side (roll beyond 45°, a sideways photo without EXIF orientation) is
    turned upright: the photo is rotated by the nearest quarter turn, detected again, and a
    warning says so; the returned ``photo`` is the upright one. An upside-down face (found
    by the detector's confidence, see :mod:`source_orientation`) is turned 180° the same way.

    Raises:
        SourceError: no face, or fewer faces than ``face_index + 1``, or a face that stays
            sideways after turning (the message names the photo).
    """
    faces = landmarker.detect(photo)
    turns, roll = 0, 0.0
    if len(faces) > face_index:
        roll = face_roll_degrees(faces[face_index].ibug68)
        if abs(roll) > MAX_ROLL_DEGREES:
            turns = upright_turns(roll)
            turned = rotate_quarter_turns(photo, turns)
            again = landmarker.detect(turned)
            if len(again) <= face_index or abs(face_roll_degrees(again[face_index].ibug68)) > MAX_ROLL_DEGREES:
                raise SourceError(
                    f"{name}: the face is rotated by about {roll:.0f}° and could not be turned upright; "
                    "save the photo upright (or with its EXIF orientation) and try again"
                )
            log.warning(
                "%s: the face lies on its side (rotated by about %.0f°; a sideways photo without EXIF "
                "orientation); the photo was turned %s to animate it upright. Save it upright to silence "
                "this warning", name, roll, describe_turn(turns),
            )
            photo, faces = turned, again
        else:
            photo, faces = _upright_if_upside_down(photo, faces, name, landmarker)
    if not faces:
        raise SourceError(
            f"{name}: no face was found in the source photo; use a photo where one face is clearly "
            "visible, frontal or near-frontal, and not much smaller than about 80 pixels"
        )
    if face_index >= len(faces):
        raise FaceIndexError(
            f"{name}: face {face_index} asked for (--source-face-index), but only {len(faces)} face(s) were found",
            name=name, face_index=face_index, faces_found=len(faces),
        )
    if len(faces) > 1:
        log.warning(
            "%s: %d faces found; using face %d (ranked by size x detection confidence); "
            "choose another with --source-face-index",
            name, len(faces), face_index,
        )
    face = faces[face_index]
    box = crop_box_for(face.box, photo.shape, prepare)
    prepared = SourceFace(
        name=name,
        photo=photo,
        box=box,
        crop=crop_image(photo, box, size),
        dense=points_to_crop(face.dense, box, size),
        ibug68=points_to_crop(face.ibug68, box, size),
        faces_found=len(faces),
        face_index=face_index,
        roll_degrees=roll if turns else 0.0,
        turns=turns,
    )
    if prepared.is_small_for(size):
        log.warning(
            "%s: the face crop is only %.0f px wide but the model works at %d px; the result will be "
            "blurry. Use a larger photo of the person if you have one",
            name, prepared.crop_side, size,
        )
    return prepared
