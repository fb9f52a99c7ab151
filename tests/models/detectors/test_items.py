"""The item judgement (models/detectors/items.py) on generated pictures whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from models.detectors.base import DetectedBox
from models.detectors.items import (
    ItemSettings,
    covered_share,
    distinct_objects,
    judge_items,
    seam_count,
)
from models.preprocess import ItemRegion, ModelInputs, Preprocessor
from tests.support import synthetic

SETTINGS = ItemSettings()


def _inputs(image: Image.Image) -> ModelInputs:
    return Preprocessor().run(synthetic.to_jpeg_bytes(image)).model_inputs


def _busy_panel(size: tuple[int, int], seed: int) -> Image.Image:
    return synthetic.render_product(size, fill=0.6, background="busy", seed=seed)


def _collage(columns: int, rows: int, gutter: int = 0) -> Image.Image:
    panel = (400, 400)
    width = columns * panel[0] + (columns - 1) * gutter
    height = rows * panel[1] + (rows - 1) * gutter
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    for row in range(rows):
        for column in range(columns):
            sheet.paste(_busy_panel(panel, seed=row * columns + column),
                        (column * (panel[0] + gutter), row * (panel[1] + gutter)))
    return sheet


def test_one_product_on_white_is_one_item() -> None:
    found = judge_items(_inputs(synthetic.render_product(fill=0.8)), [])
    assert found == {"composition.items": 1, "composition.collage": False,
                     "composition.multiple_items": False}


def test_two_products_on_white_are_multiple_items() -> None:
    found = judge_items(_inputs(synthetic.two_items()), [])
    assert found["composition.items"] == 2
    assert found["composition.multiple_items"] is True


def test_a_text_block_beside_the_product_is_not_an_item() -> None:
    image = synthetic.render_product(fill=0.7, centre=(0.4, 0.5))
    draw = ImageDraw.Draw(image)
    draw.rectangle((800, 300, 950, 700), fill=(30, 30, 30))  # artwork block beside it
    inputs = _inputs(image)
    assert len(inputs.items) == 2  # the background separates two objects ...
    text = DetectedBox("text", "overlay", 0.9, (0.79, 0.29, 0.96, 0.71))
    found = judge_items(inputs, [text])
    assert found["composition.items"] == 1  # ... but one of them is text
    assert judge_items(inputs, [])["composition.items"] == 2  # without the text box it counts


def _floating_product(under: str) -> Image.Image:
    """A cut-out product with something below it: its soft shadow, or a second, sharp thing."""
    image = synthetic.render_product((800, 800), fill=0.55, centre=(0.5, 0.4))
    layer = Image.new("L", image.size, 0)
    if under == "shadow":
        ImageDraw.Draw(layer).ellipse((220, 660, 580, 720), fill=110)
        shade = np.asarray(layer.filter(ImageFilter.GaussianBlur(14)), np.float32)[..., None]
        pixels = np.asarray(image, np.float32) * (1 - shade / 255 * 0.45)
        return Image.fromarray(pixels.astype(np.uint8))
    ImageDraw.Draw(image).rectangle((250, 650, 550, 740), fill=(200, 40, 40))  # a red box
    return image


def test_a_shadow_cast_under_the_product_is_not_an_item() -> None:
    shadow = _inputs(_floating_product("shadow"))
    assert len(shadow.items) == 2  # the background separates the shadow ...
    assert judge_items(shadow, [])["composition.items"] == 1  # ... but it is no item
    second_thing = _inputs(_floating_product("red box"))
    assert judge_items(second_thing, [])["composition.items"] == 2


def test_one_model_is_the_presentation_several_side_by_side_are_units() -> None:
    inputs = _inputs(synthetic.render_product(fill=0.8))
    one = [DetectedBox("person", "body", 0.8, (0.3, 0.05, 0.7, 0.95))]
    assert judge_items(inputs, one)["composition.items"] == 1
    three = [DetectedBox("person", "body", 0.8, (x, 0.05, x + 0.3, 0.95)) for x in (0.0, 0.35, 0.7)]
    found = judge_items(inputs, three)
    assert found["composition.items"] == 3 and found["composition.multiple_items"] is True


def _drawn(regions: list[ItemRegion], size: int = 200) -> np.ndarray:
    """A white frame with each region's box painted dark grey: objects with a visible outline."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for region in regions:
        x0, y0, x1, y1 = (round(value * size) for value in region.box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(60, 60, 60))
    return np.asarray(image).copy()


def test_a_fragment_of_the_product_is_not_an_item() -> None:
    big = ItemRegion((0.1, 0.1, 0.9, 0.9), area=0.5)
    cable_end = ItemRegion((0.92, 0.5, 0.97, 0.55), area=0.02)
    inputs = ModelInputs(rgb=_drawn([big, cable_end]), product_box=(0.1, 0.1, 0.97, 0.9),
                         items=(big, cable_end))
    assert judge_items(inputs, [])["composition.items"] == 1
    assert judge_items(inputs, [], ItemSettings(fragment_max_relative_area=0.01))[
        "composition.items"] == 2


def test_distinct_objects_merge_one_object_read_twice() -> None:
    bag = DetectedBox("object", "handbag", 0.8, (0.1, 0.1, 0.6, 0.9))
    bag_again = DetectedBox("object", "suitcase", 0.6, (0.15, 0.12, 0.58, 0.85))
    cup = DetectedBox("object", "cup", 0.7, (0.65, 0.5, 0.9, 0.9))
    faint = DetectedBox("object", "vase", 0.2, (0.65, 0.1, 0.9, 0.4))
    kept = distinct_objects([bag_again, cup, bag, faint], SETTINGS)
    assert [box.label for box in kept] == ["handbag", "cup"]


def test_two_views_that_touch_count_through_objects() -> None:
    one_silhouette = ItemRegion((0.05, 0.2, 0.95, 0.8), area=0.4)
    inputs = ModelInputs(rgb=_drawn([one_silhouette]),
                         product_box=one_silhouette.box, items=(one_silhouette,))
    views = [DetectedBox("object", "backpack", 0.8, (0.05, 0.2, 0.5, 0.8)),
             DetectedBox("object", "backpack", 0.7, (0.5, 0.2, 0.95, 0.8))]
    found = judge_items(inputs, views)
    assert found["composition.items"] == 2
    assert found["composition.multiple_items"] is True


@pytest.mark.parametrize(("columns", "rows", "gutter"),
                         [(2, 1, 0), (2, 2, 0), (3, 1, 12), (3, 1, 30)],
                         ids=["two-side-by-side", "grid-2x2", "three-with-gutters",
                              "three-with-wide-gutters"])
def test_collages_of_photos_are_found(columns: int, rows: int, gutter: int) -> None:
    found = judge_items(_inputs(_collage(columns, rows, gutter)), [])
    assert found["composition.collage"] is True
    assert found["composition.multiple_items"] is True


@pytest.mark.parametrize("background", ["white", "studio", "busy"])
def test_a_single_photo_has_no_seam(background: str) -> None:
    image = synthetic.render_product(fill=0.8, background=background)  # type: ignore[arg-type]
    assert seam_count(np.asarray(image), SETTINGS) == 0


def test_a_border_is_not_a_seam() -> None:
    image = synthetic.add_border(synthetic.render_product(fill=0.7, background="busy"), 20)
    assert seam_count(np.asarray(image), SETTINGS) == 0


def test_covered_share() -> None:
    assert covered_share((0.0, 0.0, 1.0, 1.0), [(0.0, 0.0, 0.5, 1.0)]) == pytest.approx(0.5)
    assert covered_share((0.0, 0.0, 1.0, 1.0), []) == 0.0
    # Overlapping covers count once.
    assert covered_share((0.0, 0.0, 1.0, 1.0),
                         [(0.0, 0.0, 0.5, 1.0), (0.25, 0.0, 0.75, 1.0)]) == pytest.approx(0.75)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="fragment_max_relative_area"):
        ItemSettings(fragment_max_relative_area=1.5)


def _promo_with_badge() -> tuple[Image.Image, DetectedBox]:
    """A product on a green promo template with a red price circle carrying white text."""
    image = synthetic.render_product((800, 800), fill=0.5, background=(40, 150, 90),
                                     centre=(0.4, 0.5))
    draw = ImageDraw.Draw(image)
    draw.ellipse((580, 560, 760, 740), fill=(220, 40, 50))
    draw.rectangle((615, 625, 725, 675), fill=(255, 255, 255))  # the price, as a block of text
    return image, DetectedBox("text", "overlay", 0.9, (610 / 800, 620 / 800, 730 / 800, 680 / 800))


def test_a_price_badge_is_not_an_item() -> None:
    image, price = _promo_with_badge()
    inputs = _inputs(image)
    assert len(inputs.items) == 2  # the template separates the product and the badge ...
    assert judge_items(inputs, [price])["composition.items"] == 1  # ... a badge is graphics
    # A badge is one colour around its text: the same circle in many colours is a thing.
    assert judge_items(inputs, [price], ItemSettings(badge_min_uniform_share=1.0))[
        "composition.items"] == 2


def _shoe(draw: ImageDraw.ImageDraw, left: int, mirrored: bool,
          colour: tuple[int, int, int]) -> None:
    """An asymmetric shoe-like silhouette, 200 px wide: a tall heel end, a long toe, a patch."""
    outline = [(0, 0), (70, 0), (70, 120), (200, 150), (200, 200), (0, 200)]
    patch = [(80, 50), (120, 120)]
    if mirrored:
        outline = [(200 - x, y) for x, y in outline]
        patch = [(200 - 120, 50), (200 - 80, 120)]
    draw.polygon([(left + x, 300 + y) for x, y in outline], fill=colour)
    draw.rectangle([(left + x, 300 + y) for x, y in patch], fill=(240, 240, 240))
    draw.rectangle((left, 480, left + 199, 500), fill=(250, 250, 250))  # the sole


def _two_shoes(mirrored: bool, colours: tuple[tuple[int, int, int], ...]) -> Image.Image:
    image = Image.new("RGB", (800, 800), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    _shoe(draw, 150, mirrored=False, colour=colours[0])
    _shoe(draw, 450, mirrored=mirrored, colour=colours[-1])
    return image


def test_a_mirrored_pair_is_one_unit_but_two_alike_or_two_colours_are_two() -> None:
    blue = (30, 90, 220)
    pair = judge_items(_inputs(_two_shoes(mirrored=True, colours=(blue,))), [])
    assert pair["composition.items"] == 1
    same_way = judge_items(_inputs(_two_shoes(mirrored=False, colours=(blue,))), [])
    assert same_way["composition.items"] == 2  # two left shoes: two units
    variants = judge_items(_inputs(_two_shoes(mirrored=True, colours=(blue, (200, 40, 40)))), [])
    assert variants["composition.items"] == 2  # the pair in two colours: two variants


def test_a_patch_of_shade_on_a_coloured_backdrop_is_not_an_item() -> None:
    image = synthetic.render_product((800, 800), fill=0.5, background=(215, 185, 150),
                                     centre=(0.6, 0.5))
    layer = Image.new("L", image.size, 0)
    ImageDraw.Draw(layer).ellipse((20, 300, 200, 520), fill=255)
    shade = np.asarray(layer.filter(ImageFilter.GaussianBlur(12)), np.float32)[..., None]
    pixels = np.asarray(image, np.float32) * (1 - shade / 255 * 0.1)  # faint, like real shade
    inputs = _inputs(Image.fromarray(pixels.astype(np.uint8)))
    assert len(inputs.items) == 2  # the backdrop separates the shade ...
    assert judge_items(inputs, [])["composition.items"] == 1  # ... but it holds nothing
    assert judge_items(inputs, [], ItemSettings(featureless_max_std=0.0))["composition.items"] == 2


def test_a_piece_inside_the_products_box_is_part_of_it() -> None:
    strap = ItemRegion((0.1, 0.1, 0.9, 0.9), area=0.3)
    face = ItemRegion((0.45, 0.4, 0.65, 0.6), area=0.04)  # cut loose inside the strap's box
    beside = ItemRegion((0.92, 0.4, 0.99, 0.6), area=0.04)
    for second, expected in ((face, 1), (beside, 2)):
        inputs = ModelInputs(rgb=_drawn([strap, second]), product_box=(0.1, 0.1, 0.99, 0.9),
                             items=(strap, second))
        assert judge_items(inputs, [])["composition.items"] == expected


def test_pieces_inside_one_detected_thing_count_once() -> None:
    screen = ItemRegion((0.25, 0.2, 0.75, 0.45), area=0.1)
    base = ItemRegion((0.2, 0.46, 0.8, 0.75), area=0.13)
    inputs = ModelInputs(rgb=_drawn([screen, base]), product_box=(0.2, 0.2, 0.8, 0.75),
                         items=(base, screen))
    assert judge_items(inputs, [])["composition.items"] == 2
    laptop = DetectedBox("object", "laptop", 0.6, (0.19, 0.18, 0.81, 0.77))
    assert judge_items(inputs, [laptop])["composition.items"] == 1


def test_street_fixtures_are_misreadings_not_things() -> None:
    watch = ItemRegion((0.05, 0.05, 0.95, 0.95), area=0.6)
    inputs = ModelInputs(rgb=_drawn([watch]), product_box=watch.box, items=(watch,))
    face = DetectedBox("object", "cell phone", 0.64, (0.0, 0.15, 0.55, 0.82))
    band = DetectedBox("object", "parking meter", 0.49, (0.52, 0.0, 1.0, 0.97))
    assert [box.label for box in distinct_objects([face, band], SETTINGS)] == ["cell phone"]
    assert judge_items(inputs, [face, band])["composition.multiple_items"] is False
    # The same box read as an everyday object is a second thing.
    cup = DetectedBox("object", "cup", 0.49, band.box)
    assert judge_items(inputs, [face, cup])["composition.multiple_items"] is True


def _floor_boards(boards: int, size: int = 800, seed: int = 0) -> Image.Image:
    """A product on floor boards: each board its own tone with streaks of grain, dark joints."""
    rng = np.random.default_rng(seed)
    width = size // boards
    tones = rng.integers(120, 200, boards)
    pixels = np.full((size, size), float(tones[-1]), np.float32)
    for index, tone in enumerate(tones):
        pixels[:, index * width:(index + 1) * width] = tone
    pixels += np.repeat(rng.normal(0, 14, (size, size // 8)), 8, axis=1)
    for index in range(1, boards):
        pixels[:, index * width - 3:index * width + 3] = 40
    rgb = np.stack([pixels, pixels * 0.8, pixels * 0.6], axis=2)
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    ImageDraw.Draw(image).rectangle((width + 20, 250, 2 * width - 20, 550), fill=(200, 30, 30))
    return image


@pytest.mark.parametrize("rotated", [False, True], ids=["boards", "courses-of-bricks"])
def test_the_joints_of_a_surface_are_no_seams(rotated: bool) -> None:
    image = _floor_boards(5)
    if rotated:
        image = image.transpose(Image.Transpose.ROTATE_90)
    rgb = np.asarray(image)
    assert seam_count(rgb, SETTINGS) == 0
    # Two or three straight lines could be the seams of a collage: they still count.
    assert seam_count(rgb, ItemSettings(seam_max_parallel=4)) > 0


def test_the_seams_of_a_product_the_colour_of_its_backdrop_are_one_item() -> None:
    """A white hoodie on white: only its seams and folds separate, as line-thin outlines. They
    are the one product, while two solid things of the same size stay two."""
    image = Image.new("RGB", (800, 800), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.line((120, 60, 160, 740), fill=(90, 90, 90), width=14)  # a side seam
    draw.arc((220, 150, 760, 690), 190, 350, fill=(110, 110, 110), width=14)  # a pocket's edge
    outlines = _inputs(image)
    assert len(outlines.items) == 2
    assert judge_items(outlines, [])["composition.items"] == 1
    solid = Image.new("RGB", (800, 800), (255, 255, 255))
    ImageDraw.Draw(solid).rectangle((80, 200, 330, 600), fill=(90, 90, 90))
    ImageDraw.Draw(solid).rectangle((470, 200, 720, 600), fill=(60, 110, 150))
    assert judge_items(_inputs(solid), [])["composition.items"] == 2
