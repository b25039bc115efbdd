"""The crop box: shifted inside the image rather than padded with black."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead.data.crop import crop_image, shift_inside


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([10, 20, 110, 120], [10, 20, 110, 120]),  # inside: unchanged
        ([-5, 130, 95, 230], [0, 100, 100, 200]),  # past the left and the bottom edge
        ([220, -30, 320, 70], [200, 0, 300, 100]),  # past the right and the top edge
    ],
)
def test_a_box_that_fits_is_moved_inside(box, expected):
    np.testing.assert_allclose(shift_inside(np.array(box, float), 300, 200), expected)


def test_a_box_larger_than_the_image_covers_it_and_moves_no_further():
    # 250 px high box on a 200 px high image, starting at row 10: moved up to cover rows 0..200, keeping its side
    box = shift_inside(np.array([20.0, 10.0, 270.0, 260.0]), 300, 200)
    np.testing.assert_allclose(box, [20, 0, 270, 250])
    # already covering the image on that axis: left where it is
    np.testing.assert_allclose(shift_inside(np.array([20.0, -30.0, 270.0, 220.0]), 300, 200), [20, -30, 270, 220])


def test_a_shifted_crop_has_no_black_rows():
    image = np.full((200, 300, 3), 180, np.uint8)
    box = np.array([50.0, 120.0, 150.0, 220.0])  # 20 px past the bottom
    assert crop_image(image, box, 64)[-4:].max() == 0  # the black band a model would copy
    assert crop_image(image, shift_inside(box, 300, 200), 64).min() == 180
