"""models.detectors.text_placement: what a text box lies on, on drawn frames (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from models.detectors.db_postprocess import RotatedRect
from models.detectors.text_placement import FloatBox, Placement, place, surroundings
from models.detectors.text_settings import TextDetectorSettings

SETTINGS = TextDetectorSettings()
SIDE = 400


def _frame() -> np.ndarray:
    """White 400 x 400: a red product, a small blue badge top-left, a dark banner at the
    bottom."""
    rgb = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
    rgb[80:320, 100:300] = (190, 70, 50)  # product
    rgb[20:50, 20:90] = (30, 60, 200)  # badge
    rgb[370:, :] = (30, 30, 30)  # banner
    return rgb


def _place_one(rgb: np.ndarray, rect: RotatedRect, product_box: FloatBox) -> Placement:
    (cx, cy), (w, h), _ = rect
    box = ((cx - w / 2) / SIDE, (cy - h / 2) / SIDE, (cx + w / 2) / SIDE, (cy + h / 2) / SIDE)
    (placement,) = place([rect], [box], product_box, surroundings(rgb, SETTINGS), SETTINGS)
    return placement


@pytest.mark.parametrize(
    ("rect", "label", "reason"),
    [
        (((200.0, 350.0), (120.0, 14.0), 0.0), "overlay", "background"),
        (((200.0, 200.0), (120.0, 14.0), 0.0), "on_product", "surrounded_by_product"),
        (((200.0, 200.0), (14.0, 120.0), 0.0), "on_product", "surrounded_by_product"),
        (((55.0, 35.0), (56.0, 14.0), 0.0), "overlay", "badge"),
        (((200.0, 385.0), (150.0, 14.0), 0.0), "overlay", "banner"),
    ],
    ids=["background", "product", "product-vertical", "badge", "banner"],
)
def test_placement_on_a_white_page(rect: RotatedRect, label: str, reason: str) -> None:
    placement = _place_one(_frame(), rect, (0.0, 0.0, 1.0, 1.0))
    assert (placement.label, placement.reason) == (label, reason)


def test_a_line_across_a_narrow_product_is_print() -> None:
    """Print may run the whole width of a bottle: the ends of the line reach the background,
    the strips above and below it do not."""
    rgb = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
    rgb[40:380, 170:230] = (40, 90, 170)
    placement = _place_one(rgb, ((200.0, 200.0), (70.0, 12.0), 0.0), (0.4, 0.1, 0.6, 0.95))
    assert placement.label == "on_product"


def test_a_busy_photo_has_no_background_so_only_the_product_box_decides() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    product_box = (0.25, 0.25, 0.75, 0.75)
    inside = _place_one(rgb, ((200.0, 200.0), (100.0, 14.0), 0.0), product_box)
    outside = _place_one(rgb, ((60.0, 30.0), (100.0, 14.0), 0.0), product_box)
    assert (inside.label, inside.background_share) == ("on_product", 0.0)
    assert (outside.label, outside.reason) == ("overlay", "outside_product")


def test_text_on_the_backdrop_inside_a_border_is_overlay() -> None:
    """A white frame around a black backdrop: the frame's edge colour (white) would make the
    whole backdrop "product"; the content's own edge colour makes it background."""
    rgb = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
    rgb[20:380, 20:380] = (10, 10, 10)  # black backdrop inside a 20 px white frame
    rgb[100:260, 140:260] = (190, 170, 60)  # the product
    content = (20 / SIDE, 20 / SIDE, 380 / SIDE, 380 / SIDE)
    rect: RotatedRect = ((200.0, 330.0), (150.0, 14.0), 0.0)  # a caption below the product
    box = (125 / SIDE, 323 / SIDE, 275 / SIDE, 337 / SIDE)
    product_box = (140 / SIDE, 100 / SIDE, 260 / SIDE, 260 / SIDE)
    (framed,) = place([rect], [box], product_box, surroundings(rgb, SETTINGS, content), SETTINGS)
    assert (framed.label, framed.reason) == ("overlay", "background")
    (unframed,) = place([rect], [box], product_box, surroundings(rgb, SETTINGS), SETTINGS)
    assert unframed.reason != "background"  # what the frame colour alone would have said


def test_text_along_the_products_edge_is_not_on_the_background() -> None:
    """Background on one side of the line only (the teeth of a comb atop a trimmer): print."""
    rgb = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
    rgb[100:380, 120:280] = (60, 60, 70)
    placement = _place_one(rgb, ((200.0, 100.0), (100.0, 14.0), 0.0), (0.3, 0.25, 0.7, 0.95))
    assert placement.label == "on_product"


def test_a_faint_answer_is_not_overlay() -> None:
    rgb = _frame()
    rect: RotatedRect = ((200.0, 350.0), (120.0, 14.0), 0.0)
    box = (140 / SIDE, 343 / SIDE, 260 / SIDE, 357 / SIDE)
    around = surroundings(rgb, SETTINGS)
    (sure,) = place([rect], [box], (0.0, 0.0, 1.0, 1.0), around, SETTINGS, [0.9])
    (faint,) = place([rect], [box], (0.0, 0.0, 1.0, 1.0), around, SETTINGS, [0.5])
    assert (sure.label, faint.label, faint.reason) == ("overlay", "on_product", "faint")


@pytest.mark.parametrize("side", [400, 240])
def test_a_price_tag_overlapping_a_packshot_is_a_panel(side: int) -> None:
    """A yellow tag laid over the product's corner, joined to it: no separate badge shape, but a
    flat patch that ends close around its text and touches the backdrop. Small frames too."""
    k = side / SIDE
    rgb = np.full((side, side, 3), 255, dtype=np.uint8)
    rgb[round(60 * k):round(380 * k), round(40 * k):round(330 * k)] = (40, 40, 45)  # product
    rgb[round(30 * k):round(80 * k), round(250 * k):round(380 * k)] = (250, 210, 20)  # the tag
    rect: RotatedRect = ((315 * k, 55 * k), (115 * k, 36 * k), 0.0)
    box = (257 * k / side, 37 * k / side, 373 * k / side, 73 * k / side)
    product_box = (30 * k / side, 30 * k / side, 380 * k / side, 380 * k / side)
    (placement,) = place([rect], [box], product_box, surroundings(rgb, SETTINGS), SETTINGS)
    assert (placement.label, placement.reason) == ("overlay", "panel")


@pytest.mark.parametrize("outline", [1, 3])
def test_a_price_tag_with_its_own_outline_is_still_a_panel(outline: int) -> None:
    """A sticker's dark stroke is not the product: the rim is read past it, on the backdrop
    the tag straddles (the tag reaches past the product's top and right edges)."""
    rgb = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
    rgb[60:380, 40:330] = (40, 40, 45)  # product
    rgb[30 - outline:80 + outline, 250 - outline:380 + outline] = (10, 10, 10)  # the stroke
    rgb[30:80, 250:380] = (250, 210, 20)  # the tag
    rect: RotatedRect = ((315.0, 55.0), (115.0, 36.0), 0.0)
    box = (257 / SIDE, 37 / SIDE, 373 / SIDE, 73 / SIDE)
    (placement,) = place([rect], [box], (0.07, 0.07, 0.96, 0.95), surroundings(rgb, SETTINGS),
                         SETTINGS)
    assert (placement.label, placement.reason) == ("overlay", "panel")


def test_a_display_panel_on_the_product_is_print() -> None:
    """A dark display with digits on a product whose colour is close to the backdrop's: the
    segmentation calls some of the product around it backdrop, but not most of the rim."""
    rgb = np.full((SIDE, SIDE, 3), (236, 222, 205), dtype=np.uint8)  # beige backdrop
    rgb[120:300, 60:360] = (214, 160, 130)  # rose-gold product
    rgb[190:230, 170:260] = (25, 25, 25)  # the display
    rect: RotatedRect = ((215.0, 210.0), (70.0, 24.0), 0.0)
    box = (180 / SIDE, 198 / SIDE, 250 / SIDE, 222 / SIDE)
    (placement,) = place([rect], [box], (0.15, 0.3, 0.9, 0.75), surroundings(rgb, SETTINGS),
                         SETTINGS)
    assert placement.label == "on_product"


def test_a_logo_patch_inside_the_product_is_print() -> None:
    """The same flat patch with product all round it is a logo or label on the product."""
    rgb = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
    rgb[40:390, 20:380] = (40, 40, 45)
    rgb[170:220, 130:260] = (250, 210, 20)
    rect: RotatedRect = ((195.0, 195.0), (115.0, 36.0), 0.0)
    box = (137 / SIDE, 177 / SIDE, 253 / SIDE, 213 / SIDE)
    (placement,) = place([rect], [box], (0.05, 0.1, 0.95, 0.975), surroundings(rgb, SETTINGS),
                         SETTINGS)
    assert placement.label == "on_product"


def test_a_headline_across_a_busy_poster_is_overlay() -> None:
    """No background separates on a busy photo; a line over half the width, a tenth of the
    height tall, near the top, is a title laid over it; smaller text in the middle is not."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    whole = (0.0, 0.0, 1.0, 1.0)
    title = _place_one(rgb, ((200.0, 50.0), (260.0, 44.0), 0.0), whole)
    middle = _place_one(rgb, ((200.0, 200.0), (260.0, 44.0), 0.0), whole)
    small = _place_one(rgb, ((200.0, 50.0), (120.0, 16.0), 0.0), whole)
    assert (title.label, title.reason) == ("overlay", "headline")
    assert (middle.label, small.label) == ("on_product", "on_product")


@pytest.mark.parametrize(("height", "label"), [(160, "overlay"), (440, "on_product")])
def test_a_wide_banners_title_beside_its_picture_is_a_headline(height: int, label: str) -> None:
    """A web banner (440 x 160) sets its title beside the picture, so it spans well under half
    the width but most of the height: it is measured against the shorter side. The same line on
    a square frame is ordinary print."""
    width = 440
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    rect = ((330.0, 40.0), (170.0, 40.0), 0.0)
    box = (245 / width, 20 / height, 415 / width, 60 / height)
    (placement,) = place([rect], [box], (0.0, 0.0, 1.0, 1.0), surroundings(rgb, SETTINGS),
                         SETTINGS)
    assert placement.label == label
