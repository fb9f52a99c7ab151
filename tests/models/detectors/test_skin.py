"""models.detectors.skin: the YCrCb skin range on flat colour patches, and the box arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from models.detectors.skin import skin_fraction, skin_mask

# Skin tones from light to dark (RGB), and colours a product or backdrop often has.
SKIN_TONES = [(255, 224, 196), (234, 192, 160), (198, 134, 96), (141, 85, 36), (90, 56, 37)]
NOT_SKIN = [(255, 255, 255), (128, 128, 128), (20, 20, 20), (30, 60, 200), (40, 160, 60),
            (200, 20, 30), (250, 240, 60)]


def patch(rgb: tuple[int, int, int], size: int = 8) -> np.ndarray:
    return np.full((size, size, 3), rgb, dtype=np.uint8)


@pytest.mark.parametrize("tone", SKIN_TONES)
def test_skin_tones_light_to_dark_are_skin(tone: tuple[int, int, int]) -> None:
    assert skin_mask(patch(tone)).all()


@pytest.mark.parametrize("colour", NOT_SKIN)
def test_white_grey_black_and_saturated_colours_are_not(colour: tuple[int, int, int]) -> None:
    assert not skin_mask(patch(colour)).any()


def test_fraction_counts_the_box_only_and_the_inset_trims_its_rim() -> None:
    image = patch((128, 128, 128), 100)
    image[40:60, 40:60] = SKIN_TONES[2]  # a 20 x 20 skin square in the middle
    assert skin_fraction(image, (0.0, 0.0, 1.0, 1.0)) == pytest.approx(0.04)
    assert skin_fraction(image, (0.4, 0.4, 0.6, 0.6)) == pytest.approx(1.0)
    # A box twice the square's size holds a quarter skin; trimmed by a quarter per side, all.
    assert skin_fraction(image, (0.3, 0.3, 0.7, 0.7)) == pytest.approx(0.25)
    assert skin_fraction(image, (0.3, 0.3, 0.7, 0.7), inset=0.25) == pytest.approx(1.0)


def test_an_empty_or_outside_box_has_no_skin() -> None:
    image = patch(SKIN_TONES[0], 10)
    assert skin_fraction(image, (0.5, 0.5, 0.5, 0.9)) == 0.0
    assert skin_fraction(image, (1.2, 0.0, 1.5, 1.0)) == 0.0
