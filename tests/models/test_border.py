"""models.measurements.border: frame.border on generated frames and backdrops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from models.measurements.border import (
    band_run,
    detect_border,
    detect_shaped_frame,
    ends_abruptly,
)
from tests.models.detectors.devset_photos import DEVSET
from tests.models.scenes import (
    IMAGES,
    SIZE,
    TH,
    decoded,
)
from tests.support import synthetic

BORDER_CASES = {
    "dark-40px": (lambda: synthetic.add_border(IMAGES["white"](), 40, (40, 40, 40)), 40),
    "red-1px": (lambda: synthetic.add_border(IMAGES["white"](), 1, (200, 0, 0)), 1),
    "grey-8px": (lambda: synthetic.add_border(IMAGES["white"](), 8, (128, 128, 128)), 8),
    "light-grey-5px": (lambda: synthetic.add_border(IMAGES["white"](), 5, (205, 205, 205)), 5),
    "faint-1px-line": (lambda: synthetic.add_border(IMAGES["white"](), 1, (226, 226, 226)), 1),
    "around-busy-photo": (lambda: synthetic.add_border(IMAGES["busy"](), 12, (0, 0, 0)), 12),
}


@pytest.mark.parametrize(("make", "width"), BORDER_CASES.values(), ids=BORDER_CASES.keys())
def test_border_is_found_with_its_width(make, width: int) -> None:
    found = detect_border(decoded(make(), quality=95), TH)
    assert found.found
    for side in (found.top, found.bottom, found.left, found.right):
        assert abs(side - width) <= 1
    assert found.inset_top == found.top + TH.border_transition_lines


NO_BORDER_CASES = {
    "white-packshot": lambda: IMAGES["white"](),
    "white-padding": lambda: synthetic.add_border(IMAGES["white"](), 30, (255, 255, 255)),
    "grey-backdrop-box": lambda: IMAGES["grey-backdrop"](),
    "grey-backdrop-bottle": lambda: synthetic.render_product(
        size=SIZE, background=(128, 128, 128), shape="bottle", fill=0.9),
    "dark-backdrop-disc": lambda: synthetic.render_product(
        size=SIZE, background=(30, 30, 30), shape="disc", fill=0.95),
    "busy-photo": lambda: IMAGES["busy"](),
    "cropped-on-grey": lambda: synthetic.crop_product(size=SIZE, background=(128, 128, 128)),
}


@pytest.mark.parametrize("make", NO_BORDER_CASES.values(), ids=NO_BORDER_CASES.keys())
def test_no_border(make) -> None:
    assert not detect_border(decoded(make()), TH).found


def test_bar_along_one_edge_is_a_border() -> None:
    pixels = np.asarray(IMAGES["white"]()).copy()
    pixels[-12:] = (20, 60, 160)
    found = detect_border(decoded(Image.fromarray(pixels)), TH)
    assert (found.top, found.left, found.right) == (0, 0, 0)
    assert abs(found.bottom - 12) <= 1
    assert found.inner_box(600, 600) == (0, 600 - found.inset_bottom, 0, 600)


def test_nested_frames_are_both_cropped() -> None:
    framed = synthetic.add_border(synthetic.add_border(IMAGES["white"](), 3, (0, 150, 150)), 12,
                                  (0, 0, 0))
    found = detect_border(decoded(framed, quality=95), TH)
    assert abs(found.top - 15) <= 2
    assert found.inset_left >= 15
    y0, y1, x0, x1 = found.inner_box(630, 630)
    inner = decoded(framed, quality=95)[y0:y1, x0:x1]
    assert not detect_border(inner, TH).found


def test_band_run_stops_at_the_first_non_uniform_line() -> None:
    lines = np.full((10, 50, 3), 255, dtype=np.uint8)
    lines[:3] = (10, 20, 30)
    depth, colour = band_run(lines, max_depth=5, thresholds=TH)
    assert depth == 3
    assert colour is not None and colour.tolist() == [10, 20, 30]


def test_band_run_rejects_white_and_bands_deeper_than_allowed() -> None:
    assert band_run(np.full((10, 50, 3), 250, np.uint8), 5, TH) == (0, None)
    assert band_run(np.full((10, 50, 3), 90, np.uint8), 5, TH) == (0, None)


def test_ends_abruptly_needs_nearly_the_whole_line_to_differ() -> None:
    colour = np.array([128, 128, 128], dtype=np.int16)
    line = np.full((100, 3), 255, dtype=np.uint8)
    assert ends_abruptly(line, colour, TH)
    line[:20] = 128  # a backdrop still visible beside the product
    assert not ends_abruptly(line, colour, TH)
    assert not ends_abruptly(np.full((100, 3), 140, np.uint8), colour, TH)  # barely changes


def test_band_run_keeps_a_saturated_band_whose_lines_jpeg_has_shifted() -> None:
    # Chroma subsampling moves a thin orange frame's blue channel 15 -> 27 across its 5 lines
    # (the dev set's frame around a mug): still one drawn band, not a gradient.
    lines = np.full((12, 50, 3), 242, dtype=np.uint8)
    for depth, blue in enumerate((15, 18, 27, 27, 23)):
        lines[depth] = (242, 119, blue)
    depth, colour = band_run(lines, max_depth=8, thresholds=TH)
    assert depth == 5
    assert colour is not None


def test_a_thin_frame_is_found_on_all_four_sides_of_a_devset_photo() -> None:
    photo = Image.open(DEVSET / "extra" / "boutique-mug-brand-outline.jpg").convert("RGB")
    found = detect_border(np.asarray(photo), TH)
    assert all(4 <= side <= 7 for side in (found.top, found.bottom, found.left, found.right))


def test_band_run_rejects_a_gradient() -> None:
    levels = np.linspace(100, 160, 40).astype(np.uint8)  # 1.5 levels per line
    lines = np.repeat(np.repeat(levels[:, None, None], 50, axis=1), 3, axis=2)
    assert band_run(lines, max_depth=30, thresholds=TH) == (0, None)


# --- a photo inside a drawn shape ----------------------------------------------------------------


def on_card(shape: str, card: tuple[int, int, int], photo: Image.Image | None = None) -> np.ndarray:
    """A packshot on white shown inside a hexagon or a rounded rectangle on a flat card."""
    pixels = np.asarray(photo or IMAGES["fill-50"]()).copy()
    height, width = pixels.shape[:2]
    inside = np.zeros((height, width), dtype=np.uint8)
    if shape == "hexagon":
        cx, cy, r = width // 2, height // 2, int(0.47 * min(height, width))
        points = [(cx + r * np.cos(a), cy + r * np.sin(a))
                  for a in np.linspace(np.pi / 2, np.pi / 2 + 2 * np.pi, 6, endpoint=False)]
        cv2.fillPoly(inside, [np.array(points, dtype=np.int32)], 1)
    else:  # rounded rectangle, 8 % margin, corners of radius 10 % of the side
        m, r = int(0.08 * width), int(0.1 * width)
        cv2.rectangle(inside, (m + r, m), (width - m - r, height - m), 1, -1)
        cv2.rectangle(inside, (m, m + r), (width - m, height - m - r), 1, -1)
        for x, y in ((m + r, m + r), (width - m - r, m + r), (m + r, height - m - r),
                     (width - m - r, height - m - r)):
            cv2.circle(inside, (x, y), r, 1, -1)
    pixels[inside == 0] = card
    return decoded(Image.fromarray(pixels), quality=90)


@pytest.mark.parametrize(("shape", "card"), [("hexagon", (29, 42, 84)),
                                             ("rounded", (236, 119, 99))],
                         ids=["hexagon-on-navy", "rounded-on-coral"])
def test_a_photo_inside_a_drawn_shape_is_a_border(shape: str, card: tuple[int, int, int]) -> None:
    found = detect_border(on_card(shape, card), TH)
    assert found.found
    y0, y1, x0, x1 = found.inner_box(*SIZE)
    assert 0 < y0 < 0.1 * SIZE[1] and 0 < x0 < 0.1 * SIZE[0]  # cropped to the shape's box
    assert y1 < SIZE[1] and x1 < SIZE[0]


def test_a_deep_mat_around_a_photo_is_a_border() -> None:
    # Deeper than a band may be (80 of 760 px), but it surrounds a photo with its own backdrop.
    framed = decoded(synthetic.add_border(IMAGES["white"](), 80, (40, 40, 40)))
    found = detect_border(framed, TH)
    assert found.found
    assert all(abs(side - 80) <= 4 for side in (found.top, found.bottom, found.left,
                                                 found.right))


def test_a_white_card_is_no_border() -> None:
    # A white margin is the white background the rules ask for, not a coloured one.
    photo = synthetic.render_product(size=SIZE, background=(200, 200, 200), fill=0.5,
                                     shape="disc")
    assert not detect_shaped_frame(on_card("hexagon", (255, 255, 255), photo), TH).found


def test_a_textured_product_filling_a_coloured_backdrop_is_no_shaped_frame() -> None:
    # Large and convex like a framed photo, but lined by its own textured surface.
    assert not detect_shaped_frame(decoded(IMAGES["grey-backdrop"]()), TH).found


def test_a_product_on_a_coloured_card_without_its_own_backdrop_is_no_border() -> None:
    # The photo's white backdrop recoloured to the card (a promo tile): nothing encloses it.
    photo = np.asarray(IMAGES["fill-50"]()).copy()
    photo[np.all(photo >= 250, axis=2)] = (236, 119, 99)
    assert not detect_border(decoded(Image.fromarray(photo)), TH).found


def test_a_double_line_frame_is_cropped_past_its_inner_line() -> None:
    # Outer 3 px line, a 7 px light gap, a thin 2 px inner line: the gap is part of the frame.
    framed = IMAGES["white"]()
    for width, colour in ((2, (40, 40, 40)), (7, (248, 248, 248)), (3, (40, 40, 40))):
        framed = synthetic.add_border(framed, width, colour)
    pixels = decoded(framed, quality=95)
    found = detect_border(pixels, TH)
    y0, y1, x0, x1 = found.inner_box(*pixels.shape[:2])
    assert min(y0, x0, pixels.shape[0] - y1, pixels.shape[1] - x1) >= 12
    inner_ring = np.concatenate((pixels[y0, x0:x1], pixels[y1 - 1, x0:x1]))
    assert inner_ring.min() > 200  # no dark line left along the content's edge
