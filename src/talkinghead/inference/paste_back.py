"""Put a synthesised face crop back into the full-resolution source photo (``--paste-back``).

The model only ever sees and produces a square crop of the photo (the box of
:func:`talkinghead.data.crop.crop_image`). To keep the photo's framing and resolution, the
synthesised crop is resized back to the box, and alpha-blended into the photo through a
soft mask of the face and forehead: inside the face the synthesised pixels win, outside it
the photo is kept, and the Gaussian-feathered border hides the seam between the two.

Geometry of the mask (all in crop pixels):

* the face's *up* axis is perpendicular to the line through the two eye centres, pointing
  from the chin towards the brows, so it follows head roll;
* the forehead is the brow line lifted along that axis by ``forehead`` x the brow-to-chin
  distance (measured along the axis); the real hairline sits about half that distance
  above the brows, so the default 0.6 reaches into the hair a little;
* the convex hull of the jaw, the brows and the lifted brows is grown about its area
  centroid by ``grow``, filled, dilated by ``cover`` sigmas and blurred with sigma =
  ``feather`` x face size, where the face size is the square root of the hull's area
  (stable under yaw, unlike a width). The dilation puts the feathered band *outside* the
  face outline: on the outline itself the mask is about 0.98 (Phi(2)), so neither the
  photo's own head nor the driven one shows through as a translucent doubled contour
  (the band blends the warped background, which matches the photo);
* the mask is faded to 0 over a band of two sigmas at the crop's edges, so that a face
  that touches the crop border cannot leave a hard seam along the box in the photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.data.landmarks.ibug68 import PARTS

_JAW = slice(PARTS["jaw"][0], PARTS["jaw"][1])
_BROWS = slice(PARTS["right_brow"][0], PARTS["left_brow"][1])
_RIGHT_EYE = slice(PARTS["right_eye"][0], PARTS["right_eye"][1])
_LEFT_EYE = slice(PARTS["left_eye"][0], PARTS["left_eye"][1])
_CHIN = 8  # middle of the jaw line

_SHIFT = 4  # sub-pixel precision bits for cv2.fillConvexPoly
_MASK_TOLERANCE = 1e-3  # how far outside [0, 1] a caller's mask may stray (float noise)


# ---------------------------------------------------------------------------- validation


def _check_points(points68: np.ndarray, where: str) -> np.ndarray:
    """(68, >=2) landmarks -> (68, 2) float64, or a ValueError saying what was wrong."""
    p = np.asarray(points68)
    if p.ndim != 2 or p.shape[0] != 68 or p.shape[1] < 2:
        raise ValueError(
            f"{where}: expected (68, 2) iBUG-68 landmarks in crop pixels, got shape "
            f"{p.shape}; convert other layouts with talkinghead.data.landmarks.ibug68"
        )
    p = p[:, :2].astype(np.float64)
    if not np.isfinite(p).all():
        raise ValueError(f"{where}: the landmarks contain NaN or infinite values")
    return p


def _check_size(size: int, where: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(
            f"{where}: size must be a positive int (the crop side), got {size!r}"
        )
    return int(size)


def _check_image(image: np.ndarray, name: str, where: str) -> np.ndarray:
    """An (H, W, 3) uint8 array, or a ValueError naming the argument."""
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"{where}: {name} must be a numpy array, got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{where}: {name} must be an (H, W, 3) RGB array, got shape {image.shape}"
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"{where}: {name} must be uint8 (0-255), got {image.dtype}; convert a float image "
            "in [0, 1] with (image * 255).round().clip(0, 255).astype(np.uint8)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{where}: {name} is empty (shape {image.shape})")
    return image


def _check_crop(crop: np.ndarray, where: str, size: int | None = None) -> np.ndarray:
    crop = _check_image(crop, "crop", where)
    if crop.shape[0] != crop.shape[1]:
        raise ValueError(f"{where}: crop must be square, got shape {crop.shape}")
    if size is not None and crop.shape[0] != size:
        raise ValueError(
            f"{where}: crop side is {crop.shape[0]} but this PasteBack was built for size {size}"
        )
    return crop


def _check_mask(mask: np.ndarray, side: int, where: str) -> np.ndarray:
    """A (side, side) mask in [0, 1] -> float32, or a ValueError."""
    m = np.asarray(mask)
    if m.shape != (side, side):
        raise ValueError(
            f"{where}: mask must have the crop's shape ({side}, {side}), got {m.shape}"
        )
    if not np.issubdtype(m.dtype, np.floating):
        raise ValueError(
            f"{where}: mask must be a float array in [0, 1], got {m.dtype}; "
            "build one with talkinghead.inference.paste_back.face_mask"
        )
    m = m.astype(np.float32, copy=False)
    if not np.isfinite(m).all():
        raise ValueError(f"{where}: mask contains NaN or infinite values")
    if m.min() < -_MASK_TOLERANCE or m.max() > 1 + _MASK_TOLERANCE:
        raise ValueError(
            f"{where}: mask values must lie in [0, 1], got [{m.min():.3g}, {m.max():.3g}]"
        )
    return np.clip(m, 0.0, 1.0)


# ---------------------------------------------------------------------------- the face mask


def _face_up(p: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit 'up' vector (perpendicular to the eye line) and the brow-to-chin distance."""
    to_brows = p[_BROWS].mean(axis=0) - p[_CHIN]  # (2,)
    across = p[_LEFT_EYE].mean(axis=0) - p[_RIGHT_EYE].mean(axis=0)
    eye_span = float(np.linalg.norm(across))
    if eye_span > 1e-6:
        up = np.array([across[1], -across[0]]) / eye_span
    else:
        # Both eyes on one point (a degenerate detection): fall back to chin -> brows.
        up = to_brows / (np.linalg.norm(to_brows) + 1e-12)
    if up @ to_brows < 0:
        up = -up
    height = float(up @ to_brows)
    if height <= 1e-6:
        # Brows level with the chin along the axis: only a broken layout does this.
        height = float(np.linalg.norm(to_brows))
    return up, height


def _polygon_area_centroid(poly: np.ndarray) -> tuple[float, np.ndarray]:
    """Area and area centroid of a closed (N, 2) polygon (shoelace formula)."""
    x, y = poly[:, 0], poly[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y  # (N,)
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return 0.0, poly.mean(axis=0)
    cx = ((x + xn) * cross).sum() / (6 * area)
    cy = ((y + yn) * cross).sum() / (6 * area)
    return float(abs(area)), np.array([cx, cy])


def _edge_window(size: int, band: float) -> np.ndarray:
    """(size,) smoothstep ramp: 0 at the crop edge, 1 from ``band`` pixels inwards."""
    centres = np.arange(size, dtype=np.float64) + 0.5
    distance = np.minimum(centres, size - centres)  # pixel centre to the nearest edge
    t = np.clip(distance / band, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def face_mask(
    points68: np.ndarray,
    size: int,
    *,
    grow: float = 0.08,
    forehead: float = 0.6,
    feather: float = 0.08,
    cover: float = 2.0,
) -> np.ndarray:
    """Soft mask of the face and forehead in a square crop (geometry in the module doc).

    Args:
        points68: (68, 2) iBUG-68 landmarks in crop pixels (extra columns such as z are
            ignored); map image-pixel points with :func:`talkinghead.data.crop.points_to_crop`.
        size: side of the crop in pixels.
        grow: outward growth of the hull about its centroid, as a fraction (0.08 = 8 %).
        forehead: lift of the brow line, as a fraction of the brow-to-chin distance.
        feather: Gaussian sigma of the border, as a fraction of the face size; 0 gives a
            hard mask.
        cover: how many sigmas the filled hull is dilated before the blur (0: the blur is
            centred on the hull's edge, where the mask is then only 0.5).

    Returns:
        (size, size) float32 in [0, 1]: 1 inside the face, 0 far outside it.
    """
    p = _check_points(points68, "face_mask")
    size = _check_size(size, "face_mask")
    if not grow > -1:
        raise ValueError(f"face_mask: grow must be > -1 (a fraction), got {grow}")
    if not forehead >= 0 or not feather >= 0 or not cover >= 0:
        raise ValueError(
            f"face_mask: forehead, feather and cover must be >= 0, got {forehead}, {feather} and {cover}"
        )

    up, height = _face_up(p)
    lifted = p[_BROWS] + up * (forehead * height)  # (10, 2) estimated hairline
    outline = np.concatenate([p[_JAW], p[_BROWS], lifted]).astype(np.float32)
    hull = cv2.convexHull(outline).reshape(-1, 2).astype(np.float64)  # (N, 2)
    _area, centre = _polygon_area_centroid(hull)
    hull = centre + (1 + grow) * (hull - centre)
    area, _ = _polygon_area_centroid(hull)
    if area < 1e-6:
        raise ValueError(
            "face_mask: the landmarks enclose no area (all on one point or line)"
        )

    sigma = feather * math.sqrt(area)
    # Draw on a canvas padded by 3 sigmas, so the blur sees the part of the face that lies
    # outside the crop instead of a made-up border.
    grow_px = int(round(cover * sigma))
    pad = int(math.ceil(3 * sigma)) + grow_px + 1
    canvas = np.zeros((size + 2 * pad, size + 2 * pad), dtype=np.uint8)
    vertices = np.round((hull + pad) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillConvexPoly(canvas, vertices, 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    if grow_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
        canvas = cv2.dilate(canvas, kernel)
    mask = canvas.astype(np.float32) / 255.0
    if sigma > 0:
        mask = cv2.GaussianBlur(
            mask, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE
        )
    mask = mask[pad : pad + size, pad : pad + size]  # (size, size)

    if sigma > 0:
        band = min(2 * sigma, size / 4)
        window = _edge_window(size, band).astype(np.float32)
        mask = mask * window[:, None] * window[None, :]
    return np.ascontiguousarray(np.clip(mask, 0.0, 1.0), dtype=np.float32)


# ---------------------------------------------------------------------------- pasting


@dataclass(frozen=True)
class _Placement:
    """Where a crop box lands in a photo: the visible part in photo and box pixels."""

    width: int  # box side along x in photo pixels
    height: int  # box side along y
    photo_rows: slice
    photo_cols: slice
    box_rows: slice
    box_cols: slice
    empty: bool  # the box does not overlap the photo at all


def _placement(photo_shape: tuple[int, ...], box: np.ndarray, where: str) -> _Placement:
    """Round ``box`` exactly like :func:`crop_image` and clip it to the photo."""
    b = np.asarray(box, dtype=np.float64)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(
            f"{where}: box must be 4 finite numbers x0, y0, x1, y1, got {np.asarray(box)!r}"
        )
    # The same int(round(v)) as crop_image, so the face lands on the pixels it was cut from.
    x0, y0, x1, y1 = (int(round(v)) for v in b)
    width, height = x1 - x0, y1 - y0
    if width <= 0 or height <= 0:
        raise ValueError(
            f"{where}: box {b.tolist()} has no area once rounded to pixels ({width}x{height})"
        )
    h, w = photo_shape[:2]
    ix0, iy0 = max(0, x0), max(0, y0)
    ix1, iy1 = min(w, x1), min(h, y1)
    empty = ix0 >= ix1 or iy0 >= iy1
    if empty:
        ix1, iy1 = ix0, iy0
    return _Placement(
        width=width,
        height=height,
        photo_rows=slice(iy0, iy1),
        photo_cols=slice(ix0, ix1),
        box_rows=slice(iy0 - y0, iy1 - y0),
        box_cols=slice(ix0 - x0, ix1 - x0),
        empty=empty,
    )


def _resize_to_box(
    crop: np.ndarray, mask: np.ndarray, place: _Placement
) -> tuple[np.ndarray, np.ndarray]:
    """The visible part of ``crop`` (uint8) and ``mask`` (float32) at the box's pixel size."""
    side = crop.shape[0]
    target = (place.width, place.height)  # cv2 wants (width, height)
    # Bicubic when enlarging; area when shrinking, which does not alias (as crop_image does).
    shrink = place.width <= side and place.height <= side
    crop_interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    big_crop = cv2.resize(crop, target, interpolation=crop_interp)  # (bh, bw, 3)
    # Linear for the mask: it stays in [0, 1], where bicubic would overshoot.
    big_mask = cv2.resize(mask, target, interpolation=cv2.INTER_LINEAR)  # (bh, bw)
    window = (place.box_rows, place.box_cols)
    return big_crop[window], big_mask[window]


def _blend_into(dst: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> None:
    """``dst = dst * (1 - m) + crop * m`` in place; dst and crop (h, w, 3) uint8, m (h, w).

    Only the bounding box of the mask's non-zero pixels is touched, so wherever the mask
    is 0 the photo stays bit-identical (and a small face costs a small blend).
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(mask.any(axis=0))
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    m = np.ascontiguousarray(mask[win])  # (h', w')
    # cv2.blendLinear rounds like saturate_cast and is several times faster than numpy here.
    dst[win] = cv2.blendLinear(
        np.ascontiguousarray(crop[win]), np.ascontiguousarray(dst[win]), m, 1 - m
    )


def paste_back(
    photo: np.ndarray, crop: np.ndarray, box: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Blend a synthesised square crop into the photo it was cut from.

    Args:
        photo: (H, W, 3) uint8 source photo at full resolution; not modified.
        crop: (s, s, 3) uint8 synthesised crop.
        box: (4,) x0, y0, x1, y1 of the crop in photo pixels, as given to
            :func:`talkinghead.data.crop.crop_image`; it may extend past any border.
        mask: (s, s) float32 in [0, 1], 1 where the crop should replace the photo
            (usually :func:`face_mask`).

    Returns:
        A new (H, W, 3) uint8 photo; every pixel outside the box is the photo's, bit for bit.
    """
    where = "paste_back"
    photo = _check_image(photo, "photo", where)
    crop = _check_crop(crop, where)
    mask = _check_mask(mask, crop.shape[0], where)
    place = _placement(photo.shape, box, where)
    out = photo.copy()
    if place.empty:
        return out
    part, part_mask = _resize_to_box(crop, mask, place)
    _blend_into(out[place.photo_rows, place.photo_cols], part, part_mask)
    return out


class PasteBack:
    """Paste every frame of an animation back into one source photo.

    Built once per photo: the photo (copied), the box placement and the mask of the source
    face are computed here, so a frame costs one crop-sized mask, two resizes and a blend
    over the face's bounding box (about 15 ms for a 660 px box on one CPU core). Each frame is blended through the union (max) of the source
    face's mask and the driven face's mask, so the original face is covered even where the
    driven head has moved away from it.

    Args:
        photo: (H, W, 3) uint8 source photo (copied, so later edits of it do not leak in).
        box: (4,) crop box in photo pixels, as given to ``crop_image``.
        size: side of the synthesised crops.
        source_points68: (68, 2) landmarks of the source face in crop pixels.
        grow, forehead, feather: options of :func:`face_mask`, used for every mask.
    """

    def __init__(
        self,
        photo: np.ndarray,
        box: np.ndarray,
        size: int,
        source_points68: np.ndarray,
        *,
        grow: float = 0.08,
        forehead: float = 0.6,
        feather: float = 0.08,
    ):
        where = "PasteBack"
        self._photo = _check_image(photo, "photo", where).copy()
        self.size = _check_size(size, where)
        self._place = _placement(self._photo.shape, box, where)
        self._mask_options = {"grow": grow, "forehead": forehead, "feather": feather}
        self.source_mask = face_mask(
            source_points68, self.size, **self._mask_options
        )  # (s, s)

    @property
    def photo_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of the photo every frame is pasted into."""
        return self._photo.shape

    def mask(self, points68: np.ndarray | None = None) -> np.ndarray:
        """(size, size) float32 blend mask: the source mask, united with that of ``points68``."""
        if points68 is None:
            return self.source_mask
        driven = face_mask(points68, self.size, **self._mask_options)
        return np.maximum(self.source_mask, driven)

    def __call__(
        self, crop: np.ndarray, points68: np.ndarray | None = None
    ) -> np.ndarray:
        """Paste one synthesised frame.

        Args:
            crop: (size, size, 3) uint8 synthesised crop.
            points68: (68, 2) landmarks of the driven face in crop pixels, or None to
                blend through the source face's mask alone.

        Returns:
            A new (H, W, 3) uint8 photo.
        """
        crop = _check_crop(crop, "PasteBack", self.size)
        mask = self.mask(points68)
        out = self._photo.copy()
        if self._place.empty:
            return out
        part, part_mask = _resize_to_box(crop, mask, self._place)
        _blend_into(
            out[self._place.photo_rows, self._place.photo_cols], part, part_mask
        )
        return out
