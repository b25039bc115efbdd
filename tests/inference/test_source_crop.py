"""A photo cut off at the chin: the head crop reaches past the photo and the result has no black band.

The head crop (1.8 x the landmark box) of a photo whose chin touches the bottom edge
reaches far below it. Padding there with black, as the training data was cropped, puts a
black band into the source crop that the model copies into every result frame; the crop
is shifted inside the photo instead.
"""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.data.crop import clip_crop_box
from talkinghead.data.image_sequence import read_image
from talkinghead.data.video import read_video_frames
from talkinghead.inference.options import AnimateOptions
from talkinghead.inference.pipeline import AnimationPipeline


@pytest.fixture(scope="module")
def demo():
    with AnimationPipeline.from_pretrained("demo", device="cpu") as pipe:
        yield pipe


@pytest.fixture(scope="module")
def chin_at_the_edge(demo, real_data) -> np.ndarray:
    """liveportrait_s12.jpg cut just below the chin (iBUG point 8)."""
    photo = read_image(real_data / "liveportrait_s12.jpg")
    face = demo.landmarker.detect(photo)[0]
    chin = int(np.ceil(face.ibug68[8, 1])) + 1
    assert chin < photo.shape[0] - 20  # the photo really is cut
    return np.ascontiguousarray(photo[:chin])


def _bottom_band(image: np.ndarray, rows: int = 4) -> float:
    """Mean brightness of the last ``rows`` rows over that of the rows just above."""
    bottom = image[-rows:].astype(np.float64).mean()
    above = image[-4 * rows:-rows].astype(np.float64).mean()
    return bottom / max(above, 1.0)


def test_the_head_crop_stays_inside_a_photo_cut_at_the_chin(demo, chin_at_the_edge):
    photo = chin_at_the_edge
    face = demo.landmarker.detect(photo)[0]
    crop = demo.prepare.crop
    unshifted = clip_crop_box(face.box[None], crop.scale, crop.vertical_offset)
    assert unshifted[3] - photo.shape[0] > 0.1 * (unshifted[3] - unshifted[1])  # it reached well past the edge

    source = demo.set_source([photo])
    box = source.reference.box
    assert box[3] <= photo.shape[0] + 1e-6 and box[1] >= 0 and box[0] >= 0 and box[2] <= photo.shape[1] + 1e-6
    assert box[2] - box[0] == pytest.approx(unshifted[2] - unshifted[0])  # the scale the model was trained at
    assert _bottom_band(source.reference.crop) > 0.5, "the source crop ends in a dark band"


def test_the_animated_frames_have_no_band_at_the_bottom(demo, chin_at_the_edge, real_data):
    demo.set_source([chin_at_the_edge])
    driving = [f for _, _, f in read_video_frames(real_data / "liveportrait_d18.mp4", [0, 40, 129])]
    frames = list(demo.animate(driving, AnimateOptions(motion="relative")))
    assert len(frames) == 3
    for frame in frames:
        assert _bottom_band(frame.image) > 0.5, f"frame {frame.index} ends in a dark band"
