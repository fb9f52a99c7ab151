"""models.measurements.composition: which edges of the frame the product reaches, on generated
frames segmented by the real background stage."""

from __future__ import annotations

import numpy as np
import pytest

from models.measurements import composition
from models.measurements.background import segment
from models.measurements.thresholds import MeasurementThresholds


def frame_with_block(y0: int, y1: int, x0: int, x1: int, size: int = 200) -> np.ndarray:
    rgb = np.full((size, size, 3), 255, dtype=np.uint8)
    rgb[y0:y1, x0:x1] = (40, 60, 120)
    return rgb


@pytest.mark.parametrize(("block", "edge", "sides"), [
    ((40, 160, 40, 160), False, False),  # whole, inside the frame
    ((0, 160, 60, 140), True, False),  # a model cut off at the head: the top edge
    ((40, 200, 60, 140), True, False),  # ... or at the feet: the bottom edge
    ((0, 200, 60, 140), True, False),  # both, a garment worn from chest to shoes
    ((40, 160, 0, 140), True, True),  # runs off the left side: a close-up
    ((40, 160, 60, 200), True, True),  # ... or the right
])
def test_touches_sides_tells_top_and_bottom_from_left_and_right(
    block: tuple[int, int, int, int], edge: bool, sides: bool,
) -> None:
    placed = composition.measure_composition(segment(frame_with_block(*block),
                                                     MeasurementThresholds()))
    assert placed.touches_edge is edge
    assert placed.touches_sides is sides


def test_an_empty_frame_touches_nothing() -> None:
    blank = np.full((100, 100, 3), 255, dtype=np.uint8)
    placed = composition.measure_composition(segment(blank, MeasurementThresholds()))
    assert (placed.touches_edge, placed.touches_sides) == (False, False)
