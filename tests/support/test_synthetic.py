"""tests.support.synthetic: the generators the measurement tests rely on tell the truth."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.support import synthetic


def test_same_seed_same_pixels_other_seed_other_pixels() -> None:
    first = np.asarray(synthetic.render_product(size=(200, 200), seed=4))
    again = np.asarray(synthetic.render_product(size=(200, 200), seed=4))
    other = np.asarray(synthetic.render_product(size=(200, 200), seed=5))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("shape", ["box", "bottle", "disc"])
def test_product_box_is_where_the_product_is(shape: str) -> None:
    image = np.asarray(synthetic.render_product(size=(400, 300), fill=0.7, shape=shape))
    ys, xs = np.nonzero(np.any(image < 250, axis=2))
    x0, y0, x1, y1 = synthetic.product_box((400, 300), 0.7, shape)
    assert abs(xs.min() - x0) <= 2 and abs(xs.max() + 1 - x1) <= 2
    assert abs(ys.min() - y0) <= 2 and abs(ys.max() + 1 - y1) <= 2
    assert max((x1 - x0) / 400, (y1 - y0) / 300) == pytest.approx(0.7, abs=0.01)


@pytest.mark.parametrize("background", ["white", "offwhite", "busy", (128, 128, 128)],
                         ids=["white", "offwhite", "busy", "grey"])
def test_backgrounds(background) -> None:
    corner = np.asarray(synthetic.render_product(size=(200, 200), background=background))[:20, :20]
    if background == "white":
        assert (corner == 255).all()
    elif background == "offwhite":
        assert np.abs(corner.mean(axis=(0, 1)) - synthetic.OFFWHITE).max() < 5
    elif background == "busy":
        assert corner.std() > 3
    else:
        assert (corner == 128).all()


def test_white_product_has_a_darker_outline() -> None:
    image = np.asarray(synthetic.white_product_on_white(size=(400, 400)), dtype=int)
    x0, y0, x1, y1 = synthetic.product_box((400, 400), 0.85, "box")
    middle = (y0 + y1) // 2
    assert image[middle, x0 + 1].max() < 215  # rim
    body = image[y0 + 20 : y1 - 20, x0 + 20 : x1 - 20]
    near_white = (255 - body).max(axis=2) <= 14  # the preprocessor's background tolerance
    assert near_white.mean() > 0.8


def test_border_grows_the_canvas() -> None:
    framed = synthetic.add_border(Image.new("RGB", (50, 40), "white"), 5, (1, 2, 3))
    assert framed.size == (60, 50)
    assert framed.getpixel((0, 0)) == (1, 2, 3)
    assert framed.getpixel((30, 25)) == (255, 255, 255)


def test_exif_orientation_tag_is_written() -> None:
    data = synthetic.to_jpeg_bytes(Image.new("RGB", (30, 20)), exif_orientation=6)
    stored = Image.open(io.BytesIO(data))
    assert stored.getexif()[0x0112] == 6
    assert stored.size == (20, 30)


def test_file_generators_make_what_they_say() -> None:
    assert Image.open(io.BytesIO(synthetic.to_cmyk_jpeg_bytes(Image.new("RGB", (8, 8))))).mode \
        == "CMYK"
    assert Image.open(io.BytesIO(synthetic.to_png16_bytes(Image.new("L", (8, 8))))).mode == "I;16"
    gif = Image.open(io.BytesIO(synthetic.animated_gif_bytes()))
    assert gif.n_frames == 3
    bomb = Image.open(io.BytesIO(synthetic.bomb_png_header(8000, 7000)))
    assert bomb.size == (8000, 7000)
