"""models.measurements.background and composition: the product mask and where it sits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.measurements import background, composition
from models.preprocess import Preprocessor
from tests.models.scenes import (
    SIZE,
    TH,
    WHITE_PRODUCT,
    segmented,
    true_product_mask,
)
from tests.support import synthetic

DEVSET_IMAGES = Path(__file__).resolve().parents[2] / "benchmarks" / "devset" / "images"


def test_dominant_colour_ignores_a_product_touching_the_ring() -> None:
    pixels = np.full((1000, 3), 240, dtype=np.uint8)
    pixels[:350] = (200, 30, 30)
    colour, share = background.dominant_colour(pixels, tolerance=14)
    assert colour.tolist() == [240, 240, 240]
    assert share == pytest.approx(0.65)


def test_edge_connected_keeps_enclosed_regions_out() -> None:
    mask = np.ones((9, 9), dtype=np.uint8)
    mask[2:7, 2:7] = 0  # a ring-shaped product...
    mask[4, 4] = 1  # ...with a background-coloured hole inside
    connected = background.edge_connected(mask)
    assert connected[0, 0] == 1
    assert connected[4, 4] == 0


WHITE_CASES = {
    # JPEG ringing next to the product keeps a few background pixels off exact 255.
    "pure-white": ("white", 0.99, 1.0, 0.85, 1.0, True),
    "offwhite": ("offwhite", 0.0, 0.01, 0.0, 0.0, False),
    "busy": ("busy", 0.0, 0.1, 0.0, 0.05, False),
    "white-on-white": ("white-on-white", 0.99, 1.0, 0.95, 1.0, True),
    "grey-backdrop": ("grey-backdrop", 0.0, 0.0, 0.0, 0.0, False),
    "studio-sweep": ("studio", 0.0, 0.01, 0.0, 0.0, False),
}


@pytest.mark.parametrize(
    ("name", "white_low", "white_high", "pure_low", "pure_high", "is_white"),
    WHITE_CASES.values(), ids=WHITE_CASES.keys(),
)
def test_white_fractions(name: str, white_low: float, white_high: float, pure_low: float,
                         pure_high: float, is_white: bool) -> None:
    copy, segmentation = segmented(name)
    white, pure = background.white_fractions(copy, segmentation, TH)
    assert white_low <= white <= white_high
    assert pure_low <= pure <= pure_high
    assert bool(white >= TH.white_background_min_fraction) is is_white


def test_offwhite_colour_is_estimated() -> None:
    _, segmentation = segmented("offwhite")
    assert segmentation.separable
    assert max(abs(a - b) for a, b in zip(segmentation.colour, synthetic.OFFWHITE,
                                          strict=True)) <= 5


def test_surface_fit_follows_a_sweep_and_ignores_the_product() -> None:
    height, width = 200, 300
    rows, columns = background.ring_coordinates(height, width, 6)
    ring = np.repeat((230 - 40 * rows / height)[:, None], 3, axis=1).astype(np.uint8)
    touching = columns < 60  # a product covers part of the ring
    ring[touching] = (200, 40, 40)
    coefficients, share = background.fit_surface(
        ring, rows, columns, (height, width), np.array([215, 215, 215]), tolerance=14)
    assert coefficients is not None
    assert share == pytest.approx(1 - touching.mean(), abs=0.01)
    surface = background.render_surface(coefficients, (height, width))
    assert abs(int(surface[0, 150, 0]) - 230) <= 2
    assert abs(int(surface[199, 150, 0]) - 190) <= 2


def test_busy_photo_is_not_separable() -> None:
    copy, segmentation = segmented("busy")
    assert not segmentation.separable
    assert segmentation.product.all()
    assert segmentation.product_box == (0, 0, copy.shape[1], copy.shape[0])


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("white", {}), ("white-on-white", WHITE_PRODUCT),
     ("white-bottle-on-white", {**WHITE_PRODUCT, "shape": "bottle"})],
    ids=["coloured", "white-box", "white-bottle"],
)
def test_product_mask_matches_the_truth(name: str, kwargs: dict) -> None:
    copy, segmentation = segmented(name)
    truth = true_product_mask(size=SIZE, **kwargs)
    truth_small = cv2.resize(truth.astype(np.uint8), (copy.shape[1], copy.shape[0]),
                             interpolation=cv2.INTER_NEAREST).astype(bool)
    product = segmentation.product.astype(bool)
    overlap = np.count_nonzero(product & truth_small) / np.count_nonzero(product | truth_small)
    assert overlap > 0.97  # intersection over union


def test_a_small_gap_in_a_white_products_outline_is_closed() -> None:
    pixels = np.full((300, 300, 3), 255, dtype=np.uint8)
    pixels[60:240, 60:240] = 185  # outline, 3 px
    pixels[63:237, 63:237] = 250  # white body, within tolerance of the background
    pixels[60:63, 150:153] = 255  # a 3 px highlight breaks the outline
    segmentation = background.segment(pixels, TH)
    assert segmentation.product[150, 150] == 1  # the background did not flood in
    assert composition.measure_composition(segmentation).fill_area == pytest.approx(
        0.36, abs=0.01)


def test_specks_are_dropped() -> None:
    pixels = np.full((300, 300, 3), 255, dtype=np.uint8)
    pixels[100:200, 100:200] = (40, 90, 170)
    pixels[20, 20] = (0, 0, 0)  # dust
    segmentation = background.segment(pixels, TH)
    assert segmentation.product[20, 20] == 0
    assert segmentation.product_box == (100, 100, 200, 200)
    assert len(segmentation.item_boxes) == 1


# --- composition ------------------------------------------------------------------------------


COMPOSITION_CASES = {
    # name: (fill_ratio, touches_edge, item_count)
    "fill-50": (0.5, False, 1),
    "fill-85": (0.85, False, 1),
    "fill-100": (1.0, True, 1),
    "white-on-white": (0.85, False, 1),
    "offwhite": (0.85, False, 1),
    "grey-backdrop": (0.85, False, 1),
    "studio": (0.85, False, 1),  # a 46-level sweep: only the fitted surface separates it
    "cropped": (0.8, True, 1),
    "cropped-top": (0.72, True, 1),  # 10 % of its 0.8-high box is cut off
    "two-items": (0.7, False, 2),
    "busy": (1.0, True, 1),
}


@pytest.mark.parametrize(("name", "fill", "touches", "items"), [
    (name, *values) for name, values in COMPOSITION_CASES.items()
], ids=COMPOSITION_CASES.keys())
def test_composition(name: str, fill: float, touches: bool, items: int) -> None:
    _, segmentation = segmented(name)
    placed = composition.measure_composition(segmentation)
    assert placed.fill_ratio == pytest.approx(fill, abs=0.05)
    assert placed.touches_edge is touches
    assert placed.item_count == items


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("fill-50", {"fill": 0.5, "shape": "disc"}), ("fill-85", {"fill": 0.85, "shape": "bottle"}),
     ("white-on-white", WHITE_PRODUCT)],
    ids=["disc", "bottle", "white-box"],
)
def test_fill_area_matches_the_truth(name: str, kwargs: dict) -> None:
    _, segmentation = segmented(name)
    truth = float(true_product_mask(size=SIZE, **kwargs).mean())
    assert composition.measure_composition(segmentation).fill_area == pytest.approx(truth,
                                                                                    abs=0.02)


def test_centre_offset() -> None:
    _, segmentation = segmented("off-centre")
    offset = composition.measure_composition(segmentation).centre_offset
    assert offset == pytest.approx(np.hypot(0.2, 0.2), abs=0.02)
    _, centred = segmented("white")
    assert composition.measure_composition(centred).centre_offset < 0.01


def test_empty_frame_has_no_product() -> None:
    _, segmentation = segmented("empty-white")
    placed = composition.measure_composition(segmentation)
    assert (placed.fill_ratio, placed.fill_area, placed.item_count) == (0.0, 0.0, 0)
    assert placed.touches_edge is False


# --- a softly shaded light backdrop -------------------------------------------------------------


def shaded_backdrop(top_left: int, bottom_right: int, spread: int = 0) -> np.ndarray:
    """A 300 x 300 neutral backdrop shaded linearly from one corner to the other (a sweep lit
    from one side), `spread` levels bluer than neutral, a dark product in the middle."""
    ramp = np.linspace(0.0, 1.0, 300, dtype=np.float32)
    level = top_left + (bottom_right - top_left) * (ramp[:, None] + ramp[None, :]) / 2
    pixels = np.repeat(np.rint(level)[:, :, None], 3, axis=2)
    pixels[:, :, 2] += spread
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    pixels[90:210, 110:190] = (40, 35, 30)
    return pixels


def is_white(pixels: np.ndarray) -> bool:
    segmentation = background.segment(pixels, TH)
    white, _ = background.white_fractions(pixels, segmentation, TH)
    return bool(white >= TH.white_background_min_fraction)


SHADED_CASES = {
    # White to a person: under 245 over half the frame, but one light neutral backdrop.
    "white-sweep-255-to-228": (255, 228, 0, True),
    "flat-near-white-242": (242, 242, 0, True),
    # The ~240 line: light grey paper stays grey, however evenly lit.
    "light-grey-234": (234, 234, 0, False),
    "grey-sweep-245-to-215": (245, 215, 0, False),  # half of it under 240
    # A tinted backdrop is a colour, not white.
    "pale-blue-242": (242, 242, 14, False),
}


@pytest.mark.parametrize(("top_left", "bottom_right", "spread", "white"), SHADED_CASES.values(),
                         ids=SHADED_CASES.keys())
def test_a_shaded_light_backdrop_is_judged_as_one_backdrop(
        top_left: int, bottom_right: int, spread: int, white: bool) -> None:
    assert is_white(shaded_backdrop(top_left, bottom_right, spread)) is white


def test_a_bright_patch_in_a_scene_is_not_a_white_backdrop() -> None:
    # A lit wall above a darker floor: the wall is light and neutral, but no one colour
    # surrounds the product along most of the frame's edge.
    pixels = shaded_backdrop(250, 236)
    pixels[170:] = (150, 120, 90)  # floor across the lower part of the frame
    segmentation = background.segment(pixels, TH)
    assert segmentation.colour_share < TH.white_backdrop_min_ring_share
    assert not is_white(pixels)


def test_masked_median() -> None:
    values = np.array([[10, 20, 30, 250]], dtype=np.uint8)
    assert background.masked_median(values, np.array([[1, 1, 1, 0]], dtype=np.uint8)) == 20
    assert background.masked_median(values, np.zeros((1, 4), dtype=np.uint8)) == 0


# --- a close-up filling the frame: slivers of a white studio backdrop ---------------------------

def close_up(backdrop: tuple[int, int, int]) -> bytes:
    """A knitted garment (textured mid-tone) across the whole frame and off every side but the
    right, where a sliver of backdrop shows beside the sleeve: the ring is mostly garment."""
    rng = np.random.default_rng(7)
    pixels = np.clip(rng.normal(130, 18, (400, 400, 3)), 0, 255).astype(np.uint8)
    pixels[:, 300:] = backdrop
    pixels[150:260, 300:360] = (120, 130, 140)  # a hand in the sliver
    return cv2.imencode(".png", pixels[:, :, ::-1])[1].tobytes()


@pytest.mark.parametrize(("backdrop", "white"), [
    ((255, 255, 255), True),  # a studio's white, blown out to 255
    ((248, 248, 248), False),  # a light wall: near-white, never clipped
    ((200, 200, 205), False),  # grey
])
def test_a_close_ups_backdrop_is_white_when_its_slivers_are_blown_out(
        backdrop: tuple[int, int, int], white: bool) -> None:
    attributes = Preprocessor().run(close_up(backdrop)).attributes
    assert attributes["composition.fill_ratio"] >= background.CLOSE_UP_MIN_FILL
    assert attributes["background.white_fraction"] < TH.white_background_min_fraction
    assert attributes["background.is_white"] is white


@pytest.mark.parametrize(("name", "white"), [
    ("magento/wj08-gray_alt1.jpg", True),  # a hem close-up on the studio's white
    ("magento/ws05-black_alt1.jpg", True),  # a sleeve close-up
    ("extra/wooblocks-armchair.jpg", False),  # a white room: bright, but not a backdrop
    ("extra/wooblocks-gamepads.jpg", False),  # a whitish tabletop
])
def test_close_ups_on_dev_set_photos(name: str, white: bool) -> None:
    photo = DEVSET_IMAGES / name
    assert Preprocessor().run(photo.read_bytes()).attributes["background.is_white"] is white
