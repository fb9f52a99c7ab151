"""models.measurements.composition: which edges of the frame the product reaches, on generated
frames segmented by the real background stage, and on dev-set photos through the preprocess
stage."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.measurements import composition
from models.measurements.background import segment
from models.measurements.thresholds import MeasurementThresholds
from models.preprocess import Preprocessor


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


# --- a soft shadow running off the frame is not the product cut by it --------------------------

def frame_with_shadow(shadow_to_edge: bool = True, product_tone: int = 60) -> np.ndarray:
    """An off-white backdrop (238), a product block in the middle, and its soft shadow: a blurred
    darkening of the backdrop to 60 % that runs right, to the frame's edge or short of it."""
    size = 200
    backdrop = np.full((size, size), 1.0, dtype=np.float32)
    backdrop[110:150, 100:(size + 40 if shadow_to_edge else 170)] = 0.6
    backdrop = cv2.GaussianBlur(backdrop, (0, 0), 14)  # soft: at most ~3 levels per px
    rgb = np.clip(np.rint(238 * backdrop[..., None] * np.ones(3)), 0, 255).astype(np.uint8)
    rgb[50:150, 50:120] = (product_tone, product_tone + 20, product_tone + 60)
    return rgb


def test_a_soft_shadow_running_off_the_frame_does_not_touch_it() -> None:
    segmentation = segment(frame_with_shadow(), MeasurementThresholds())
    assert segmentation.shadow is not None
    assert segmentation.shadow[:, -1].any()  # the shadow reaches the right edge ...
    placed = composition.measure_composition(segmentation)
    assert (placed.touches_edge, placed.touches_sides) == (False, False)  # ... the product not
    # It is still product for the fill and the box, as before: only touching changed.
    assert segmentation.product[:, -1].any()


def test_a_neutral_product_cut_by_the_frame_is_not_taken_for_a_shadow() -> None:
    # A grey product (the backdrop darkened, channel for channel) with a sharp outline that runs
    # off the right edge: its outline blocks the shadow test.
    rgb = np.full((200, 200, 3), 238, dtype=np.uint8)
    rgb[60:140, 80:200] = 150
    placed = composition.measure_composition(segment(rgb, MeasurementThresholds()))
    assert (placed.touches_edge, placed.touches_sides) == (True, True)


def test_without_a_shadow_nothing_changes() -> None:
    segmentation = segment(frame_with_shadow(shadow_to_edge=False), MeasurementThresholds())
    placed = composition.measure_composition(segmentation)
    assert not placed.touches_edge
    assert segmentation.shadow is None  # nothing reaches the edge: no shadow to tell apart


def test_things_joined_only_by_their_shadows_are_separate_items() -> None:
    """Two pots on a pale table whose soft shadows merge between them and run off the frame: one
    component with its shadow, two items without it."""
    size = 240
    shade = np.full((size, size), 1.0, dtype=np.float32)
    shade[60:200, 40:size] = 0.6  # one shadow under both, to the right edge
    shade = cv2.GaussianBlur(shade, (0, 0), 14)
    rgb = np.clip(np.rint(236 * shade[..., None] * np.ones(3)), 0, 255).astype(np.uint8)
    cv2.circle(rgb, (70, 90), 35, (190, 90, 60), -1)
    cv2.circle(rgb, (160, 150), 35, (60, 120, 60), -1)
    segmentation = segment(rgb, MeasurementThresholds())
    assert segmentation.shadow is not None and segmentation.shadow.any()
    product_parts, _ = cv2.connectedComponents(segmentation.product)
    assert product_parts - 1 == 1  # the shadow joins them ...
    assert len(segmentation.item_boxes) == 2  # ... but they are two things


@pytest.mark.parametrize(("name", "cut"), [
    ("extra/boutique-mug.jpg", False),  # its shadow runs off the right edge
    ("extra/boutique-terrarium.jpg", False),
    ("extra/wooblocks-zenit-camera.jpg", False),  # a faint table edge and shadow below
    ("extra/wooblocks-tea-infuser.jpg", True),  # the handle runs off the left edge
    ("extra/wooblocks-gamepads.jpg", True),  # both controllers cut by the frame
])
def test_dev_set_products_touch_the_frame_only_where_a_reviewer_sees_them_cut(
        name: str, cut: bool) -> None:
    photo = Path(__file__).resolve().parents[2] / "benchmarks" / "devset" / "images" / name
    attributes = Preprocessor().run(photo.read_bytes()).attributes
    assert attributes["composition.touches_edge"] is cut
