"""models.preprocess.Preprocessor: bytes in; all preprocess attributes and model inputs out."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
from PIL import Image

from curator.contracts import vocabulary
from curator.contracts.errors import ImageError
from models.decode import DecodeLimits
from models.preprocess import Preprocessor, PreprocessResult
from models.quality import SCORER_NAME
from tests.support import synthetic

SIZE = (800, 800)
PREPROCESSOR = Preprocessor()
PREPROCESS_NAMES = {
    name for name, attribute in vocabulary.VOCABULARY.items() if attribute.stage == "preprocess"
}


@cache
def run(name: str) -> PreprocessResult:
    return PREPROCESSOR.run(synthetic.to_jpeg_bytes(SCENES[name]()), image_id=name)


SCENES = {
    "white": lambda: synthetic.render_product(size=SIZE),
    "offwhite": lambda: synthetic.render_product(size=SIZE, background="offwhite"),
    "studio": lambda: synthetic.render_product(size=SIZE, background="studio", fill=0.6),
    "busy": lambda: synthetic.render_product(size=SIZE, background="busy", shape="bottle"),
    "white-on-white": lambda: synthetic.white_product_on_white(size=SIZE),
    "bordered": lambda: synthetic.add_border(synthetic.render_product(size=SIZE), 30, (40, 40, 40)),
    "grey-backdrop": lambda: synthetic.render_product(size=SIZE, background=(128, 128, 128),
                                                      shape="bottle"),
    "fill-50": lambda: synthetic.render_product(size=SIZE, fill=0.5),
    "fill-100": lambda: synthetic.render_product(size=SIZE, fill=1.0, shape="disc"),
    "cropped": lambda: synthetic.crop_product(size=SIZE, side="left"),
    "two-items": lambda: synthetic.two_items(size=SIZE),
    "blurred": lambda: synthetic.blur(synthetic.render_product(size=SIZE), 3),
    "grey-in-rgb": lambda: synthetic.grey_in_rgb(size=SIZE),
    "wide": lambda: synthetic.render_product(size=(1000, 400), fill=0.8, shape="bottle"),
}

# name: {attribute: expected}; floats are compared within 0.05.
EXPECTED: dict[str, dict[str, vocabulary.AttributeValue]] = {
    "white": {"background.is_white": True, "composition.fill_ratio": 0.85,
              "composition.item_count": 1, "composition.touches_edge": False,
              "frame.border": False, "color.grayscale": False},
    "offwhite": {"background.is_white": False, "background.pure_white_fraction": 0.0,
                 "composition.fill_ratio": 0.85, "composition.touches_edge": False},
    "studio": {"background.is_white": False, "composition.fill_ratio": 0.6,
               "composition.touches_edge": False, "frame.border": False},
    "busy": {"background.is_white": False, "composition.touches_edge": True,
             "composition.fill_ratio": 1.0, "frame.border": False},
    "white-on-white": {"background.is_white": True, "composition.fill_ratio": 0.85,
                       "composition.fill_area": 0.56, "composition.item_count": 1},
    "bordered": {"frame.border": True, "background.is_white": True,
                 "composition.fill_ratio": 0.85, "composition.touches_edge": False,
                 "file.width": 860, "file.height": 860},
    "grey-backdrop": {"frame.border": False, "background.is_white": False,
                      "background.white_fraction": 0.0, "composition.fill_ratio": 0.85},
    "fill-50": {"composition.fill_ratio": 0.5, "composition.centre_offset": 0.0},
    "fill-100": {"composition.fill_ratio": 1.0, "composition.touches_edge": True},
    "cropped": {"composition.touches_edge": True, "composition.item_count": 1},
    "two-items": {"composition.item_count": 2, "composition.fill_ratio": 0.7},
    "blurred": {"composition.fill_ratio": 0.85},
    "grey-in-rgb": {"color.grayscale": True, "file.color_mode": "RGB"},
    "wide": {"file.width": 1000, "file.height": 400, "file.aspect_ratio": 2.5,
             "file.longest_side": 1000, "composition.fill_ratio": 0.8},
}


@pytest.mark.parametrize("name", SCENES.keys())
def test_every_preprocess_attribute_is_produced_and_valid(name: str) -> None:
    attributes = run(name).attributes
    assert set(attributes) == PREPROCESS_NAMES
    for attribute, value in attributes.items():
        vocabulary.check_value(attribute, value)
        assert type(value) in (bool, int, float, str, type(None)), (attribute, type(value))
    json.dumps(attributes)


@pytest.mark.parametrize("name", EXPECTED.keys())
def test_scene_values(name: str) -> None:
    attributes = run(name).attributes
    for attribute, expected in EXPECTED[name].items():
        actual = attributes[attribute]
        if isinstance(expected, float):
            assert actual == pytest.approx(expected, abs=0.05), attribute
        else:
            assert actual == expected, attribute


def test_sharp_and_blurred_fall_either_side_of_the_policy_line() -> None:
    line = PREPROCESSOR.thresholds.sharpness_blurred_below
    sharp = run("white").attributes
    blurred = run("blurred").attributes
    assert sharp["sharpness.laplacian_var"] > line > blurred["sharpness.laplacian_var"]
    assert sharp["sharpness.score"] > 0.5 > blurred["sharpness.score"]
    assert sharp["quality.score"] > blurred["quality.score"]


def test_quality_attributes() -> None:
    attributes = run("white").attributes
    assert attributes["quality.scorer"] == SCORER_NAME == "card-v0"
    assert 0.0 <= attributes["quality.score"] <= 1.0


def test_file_attributes_of_a_jpeg() -> None:
    data = synthetic.to_jpeg_bytes(SCENES["white"]())
    attributes = PREPROCESSOR.run(data).attributes
    assert attributes["file.format"] == "JPEG"
    assert attributes["file.bytes"] == len(data)
    assert attributes["file.animated"] is False
    assert attributes["file.dpi"] is None or isinstance(attributes["file.dpi"], float)


def test_exif_rotation_swaps_width_and_height() -> None:
    upright = synthetic.render_product(size=(600, 900), shape="bottle")
    rotated = PREPROCESSOR.run(synthetic.to_jpeg_bytes(upright, exif_orientation=6))
    assert (rotated.attributes["file.width"], rotated.attributes["file.height"]) == (600, 900)
    plain = PREPROCESSOR.run(synthetic.to_jpeg_bytes(upright))
    assert rotated.attributes["composition.fill_ratio"] == pytest.approx(
        plain.attributes["composition.fill_ratio"], abs=0.01)
    assert rotated.attributes["hash.phash"] == plain.attributes["hash.phash"]


def test_model_inputs() -> None:
    result = run("white")
    rgb = result.model_inputs.rgb
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert max(rgb.shape[:2]) <= 640 and rgb.flags["C_CONTIGUOUS"]
    x0, y0, x1, y1 = synthetic.product_box(SIZE, 0.85, "box")
    expected = (x0 / SIZE[0], y0 / SIZE[1], x1 / SIZE[0], y1 / SIZE[1])
    assert result.model_inputs.product_box == pytest.approx(expected, abs=0.02)


def test_model_box_is_in_units_of_the_whole_bordered_frame() -> None:
    x0, y0, x1, y1 = synthetic.product_box(SIZE, 0.85, "box")
    expected = ((x0 + 30) / 860, (y0 + 30) / 860, (x1 + 30) / 860, (y1 + 30) / 860)
    assert run("bordered").model_inputs.product_box == pytest.approx(expected, abs=0.02)


def test_small_images_are_not_enlarged() -> None:
    result = PREPROCESSOR.run(synthetic.to_jpeg_bytes(synthetic.render_product(size=(300, 200))))
    assert result.model_inputs.rgb.shape == (200, 300, 3)


def test_timings_cover_every_step() -> None:
    timings = run("white").timings_ms
    assert {"decode", "border", "background", "sharpness", "hash", "total"} <= set(timings)
    assert all(isinstance(value, float) and value >= 0 for value in timings.values())
    assert timings["total"] >= timings["decode"]


def test_same_bytes_same_attributes() -> None:
    data = synthetic.to_jpeg_bytes(SCENES["two-items"]())
    assert PREPROCESSOR.run(data).attributes == PREPROCESSOR.run(data).attributes


def test_duplicates_share_hashes() -> None:
    image = SCENES["white"]()
    as_png = PREPROCESSOR.run(synthetic.to_png_bytes(image)).attributes
    as_tiff_pixels = PREPROCESSOR.run(synthetic.to_png_bytes(image, compress_level=1)).attributes
    assert as_png["hash.md5"] == as_tiff_pixels["hash.md5"]
    as_jpeg = run("white").attributes
    assert as_png["hash.md5"] != as_jpeg["hash.md5"]
    assert bin(int(as_png["hash.phash"], 16) ^ int(as_jpeg["hash.phash"], 16)).count("1") <= 4


def test_transparent_png_is_measured_on_white_but_has_no_white_background() -> None:
    data = synthetic.to_png_bytes(synthetic.transparent_product(size=(600, 600), fill=0.8))
    attributes = PREPROCESSOR.run(data).attributes
    assert attributes["file.color_mode"] == "RGBA"
    assert attributes["background.transparent"] is True
    assert attributes["background.is_white"] is False
    assert attributes["background.pure_white_fraction"] > 0.99
    assert attributes["composition.fill_ratio"] == pytest.approx(0.8, abs=0.03)


def test_an_opaque_png_has_no_transparent_backdrop() -> None:
    attributes = PREPROCESSOR.run(synthetic.to_png_bytes(SCENES["white"]())).attributes
    assert attributes["background.transparent"] is False
    assert attributes["background.is_white"] is True


def test_animated_gif_is_flagged() -> None:
    attributes = PREPROCESSOR.run(synthetic.animated_gif_bytes()).attributes
    assert attributes["file.animated"] is True
    assert attributes["file.format"] == "GIF"


def test_image_error_carries_the_image_id() -> None:
    with pytest.raises(ImageError) as caught:
        PREPROCESSOR.run(b"\xff\xd8\xff\x00broken", image_id="img-7")
    assert caught.value.code == "corrupt_image"
    assert caught.value.image_id == "img-7"
    assert caught.value.to_dict()["image_id"] == "img-7"


def test_decode_limits_are_applied() -> None:
    strict = Preprocessor(decode_limits=DecodeLimits(max_pixels=10_000))
    with pytest.raises(ImageError) as caught:
        strict.run(synthetic.to_jpeg_bytes(Image.new("RGB", (200, 200))), image_id="big")
    assert (caught.value.code, caught.value.image_id) == ("too_many_pixels", "big")


def test_uniform_image_does_not_break_anything() -> None:
    for colour in [(255, 255, 255), (0, 0, 0), (120, 60, 30)]:
        attributes = PREPROCESSOR.run(synthetic.to_png_bytes(Image.new("RGB", (64, 48), colour)))
        for name, value in attributes.attributes.items():
            vocabulary.check_value(name, value)


def test_tiny_image() -> None:
    attributes = PREPROCESSOR.run(synthetic.to_png_bytes(Image.new("RGB", (1, 1), (9, 9, 9))))
    assert attributes.attributes["file.longest_side"] == 1
    for name, value in attributes.attributes.items():
        vocabulary.check_value(name, value)


def test_empty_frame_is_exposed_as_a_whole() -> None:
    attributes = PREPROCESSOR.run(synthetic.to_png_bytes(Image.new("RGB", (64, 48), (0, 0, 0))))
    assert attributes.attributes["composition.item_count"] == 0
    assert attributes.attributes["exposure.clipped_dark"] == 1.0
