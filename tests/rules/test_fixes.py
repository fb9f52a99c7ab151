"""rules.fixes: each fix, measured before and after by the real Preprocessor and judged by the
shipped main-image policy, on generated images whose truth is known."""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, JpegImagePlugin

from curator.contracts.vocabulary import AttributeValue
from models.decode import decode_image
from models.preprocess import Preprocessor
from rules.evaluate import evaluate
from rules.fixes import (
    FIXES,
    FixError,
    apply_fixes,
    fix_names,
    validate_fix_params,
)
from rules.loader import POLICY_DIR, load_policy
from tests.support import synthetic

PREPROCESSOR = Preprocessor()
POLICY = load_policy(POLICY_DIR / "base.yaml")  # the main-image rules (was main_image.yaml)
Attributes = dict[str, AttributeValue]
FixList = tuple[tuple[str, Mapping[str, Any]], ...]

# How much "no worse" allows for what re-measuring and re-encoding move by themselves.
FILL_TOLERANCE = 0.02  # linear fill
WHITE_TOLERANCE = 0.01  # near-white share of the background
PURE_WHITE_TOLERANCE = 0.02  # JPEG ringing next to the product is never exactly 255
PURE_WHITE_LINE = 0.90  # main.background.pure_white: re-encoding may cost points above it
# sharpness.score: the Laplacian variance moves by a third when the frame changes by a few px
# (the same product in 1000 and 1004 px frames: 683 and 928 grey levels²), pixels untouched.
SHARPNESS_TOLERANCE = 0.05
MIN_LONGEST_SIDE = 500  # image.size.minimum


@cache
def measure(data: bytes) -> Attributes:
    return PREPROCESSOR.run(data).attributes


def violations(attributes: Attributes) -> set[str]:
    return {v.rule_id for v in evaluate(POLICY, attributes, "main").violations}


def jpeg(image: Image.Image) -> bytes:
    return synthetic.to_jpeg_bytes(image)


def product(size: tuple[int, int] = (800, 800), **kwargs: Any) -> bytes:
    return jpeg(synthetic.render_product(size=size, **kwargs))


def bordered(size: int, fill: float, width_px: int) -> bytes:
    return jpeg(synthetic.add_border(synthetic.render_product(size=(size, size), fill=fill),
                                     width_px))


def wide_and_mostly_white() -> bytes:
    """11000 x 1200 px: a product pasted on white, so the file and the decode stay small."""
    canvas = Image.new("RGB", (11_000, 1200), (255, 255, 255))
    canvas.paste(synthetic.render_product(size=(1200, 1200)), (4900, 0))
    return jpeg(canvas)


def hard_edged_box_png() -> bytes:
    """A flat box on exact white, drawn without anti-aliasing, stored losslessly."""
    image = Image.new("RGB", (600, 600), (255, 255, 255))
    ImageDraw.Draw(image).rectangle((150, 100, 450, 500), fill=(190, 70, 50))
    return synthetic.to_png_bytes(image)


def assert_no_worse(before: Attributes, after: Attributes, *, fill: bool = True) -> None:
    """The main-image attributes a fix does not target have not regressed."""
    if fill:
        assert after["composition.fill_ratio"] >= before["composition.fill_ratio"] - FILL_TOLERANCE
    assert after["composition.touches_edge"] <= before["composition.touches_edge"]
    assert after["composition.item_count"] == before["composition.item_count"]
    assert after["frame.border"] <= before["frame.border"]
    assert (after["background.white_fraction"]
            >= before["background.white_fraction"] - WHITE_TOLERANCE)
    assert after["background.pure_white_fraction"] >= min(
        before["background.pure_white_fraction"], PURE_WHITE_LINE) - PURE_WHITE_TOLERANCE
    assert after["file.longest_side"] >= min(before["file.longest_side"], MIN_LONGEST_SIDE)
    assert after["sharpness.score"] >= before["sharpness.score"] - SHARPNESS_TOLERANCE


@dataclass(frozen=True)
class Case:
    image: Callable[[], bytes]
    fixes: FixList
    resolves: tuple[str, ...]  # rule ids violated before and not after
    expect: dict[str, AttributeValue] = field(default_factory=dict)  # after; floats within 0.02
    # Fill moves by design: measured inside a border before trimming, over the whole canvas
    # after; or brought down to the target by pad_to_fill.
    fill_may_drop: bool = False


CASES: dict[str, Case] = {
    # A 20 px frame around 800 px: painting it white keeps 840 px, and the fill measured inside
    # the frame (0.90 * 800 / 796) becomes the product over the whole canvas (720 / 840).
    "trim-frame": Case(
        lambda: bordered(800, 0.9, 20), (("trim_border", {}),), ("main.frame.no_border",),
        {"file.width": 840, "file.height": 840, "composition.fill_ratio": 720 / 840},
        fill_may_drop=True,
    ),
    "trim-thin-line": Case(
        lambda: jpeg(synthetic.add_border(synthetic.render_product(size=(1000, 1000)), 2,
                                          (30, 60, 160))),
        (("trim_border", {}),), ("main.frame.no_border",), {"file.width": 1004},
        fill_may_drop=True,
    ),
    "whiten-offwhite": Case(
        lambda: product(background=(250, 250, 250)), (("whiten_background", {}),),
        ("main.background.pure_white",), {"composition.fill_ratio": 0.85},
    ),
    "whiten-offwhite-with-shadow": Case(
        lambda: product(background=(248, 248, 248), shadow=True, fill=0.7),
        (("whiten_background", {}),), ("main.background.pure_white",),
    ),
    "whiten-white-product": Case(
        lambda: product(background=(250, 250, 250), **WHITE_PRODUCT),
        (("whiten_background", {}),), ("main.background.pure_white",),
    ),
    "pad-small-product": Case(
        lambda: product((1800, 1800), fill=0.5), (("pad_to_fill", {}),),
        ("main.fill.minimum", "main.fill.target"),
        {"composition.fill_ratio": 0.85, "file.aspect_ratio": 1.0},
    ),
    "pad-landscape-bottle-to-square": Case(
        lambda: product((2400, 1500), fill=0.6, shape="bottle"), (("pad_to_fill", {}),),
        ("main.fill.minimum", "main.fill.target"),
        {"composition.fill_ratio": 0.85, "file.aspect_ratio": 1.0},
    ),
    "pad-to-portrait": Case(
        lambda: product((1600, 1600), fill=0.6, shape="bottle"),
        (("pad_to_fill", {"aspect_ratio": 0.75}),), ("main.fill.minimum", "main.fill.target"),
        {"composition.fill_ratio": 0.85, "file.aspect_ratio": 0.75},
    ),
    # Too large (not touching): white margin brings it down to the target.
    "pad-large-product": Case(
        lambda: product((1000, 1000), fill=0.97), (("pad_to_fill", {}),), (),
        {"composition.fill_ratio": 0.85, "file.aspect_ratio": 1.0}, fill_may_drop=True,
    ),
    "pad-two-items": Case(
        lambda: jpeg(synthetic.two_items(size=(1800, 1800), fill=0.5)), (("pad_to_fill", {}),),
        ("main.fill.minimum",), {"composition.fill_ratio": 0.85, "composition.item_count": 2},
    ),
    "downscale-11000": Case(
        wide_and_mostly_white, (("downscale", {}),), ("image.size.maximum",),
        {"file.width": 10_000, "file.height": 1091},
    ),
    "convert-cmyk-jpeg": Case(
        lambda: synthetic.to_cmyk_jpeg_bytes(synthetic.render_product(size=(800, 800))),
        (("convert_to_srgb_jpeg", {}),), (), {"file.format": "JPEG", "file.color_mode": "RGB"},
    ),
    "convert-16-bit-png": Case(
        lambda: synthetic.to_png16_bytes(synthetic.render_product(size=(800, 800))),
        (("convert_to_srgb_jpeg", {}),), ("image.color_mode",),
        {"file.format": "JPEG", "file.color_mode": "RGB"},
    ),
    "convert-palette-png": Case(
        lambda: synthetic.to_palette_png_bytes(synthetic.transparent_product(size=(800, 800))),
        (("convert_to_srgb_jpeg", {}),), ("image.color_mode", "main.background.opaque"),
        {"file.format": "JPEG", "file.color_mode": "RGB"},
    ),
    # A cut-out product: flattened on white, it is the white packshot it was meant to be.
    "convert-transparent-png": Case(
        lambda: synthetic.to_png_bytes(synthetic.transparent_product(size=(800, 800))),
        (("convert_to_srgb_jpeg", {}),), ("main.background.opaque",),
        {"file.format": "JPEG", "background.transparent": False, "background.is_white": True},
    ),
    "convert-webp": Case(
        lambda: _webp(synthetic.render_product(size=(800, 800))),
        (("convert_to_srgb_jpeg", {}),), ("image.format.not_webp",),
        {"file.format": "JPEG", "file.color_mode": "RGB"},
    ),
    # Together: the frame is painted white first, so the padding sees a white background.
    "trim-then-pad": Case(
        lambda: bordered(2000, 0.5, 40), (("pad_to_fill", {}), ("trim_border", {})),
        ("main.frame.no_border", "main.fill.minimum", "main.fill.target"),
        {"composition.fill_ratio": 0.85, "file.aspect_ratio": 1.0},
    ),
    "whiten-then-pad": Case(
        lambda: product((1800, 1800), fill=0.5, background=(250, 250, 250)),
        (("pad_to_fill", {}), ("whiten_background", {})),
        ("main.background.pure_white", "main.fill.minimum", "main.fill.target"),
        {"composition.fill_ratio": 0.85},
    ),
}
WHITE_PRODUCT: dict[str, Any] = {
    "product_colour": synthetic.WHITE_PRODUCT_COLOUR, "textured": False,
    "shading": synthetic.WHITE_PRODUCT_SHADING,
}


def _webp(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=95)
    return out.getvalue()


@cache
def fixed(name: str) -> tuple[Attributes, Attributes]:
    case = CASES[name]
    data = case.image()
    result = apply_fixes(data, case.fixes)
    assert set(result.applied) == {fix for fix, _ in case.fixes}, result.skipped
    return measure(data), measure(result.data)


@pytest.mark.parametrize("name", CASES.keys())
def test_fix_resolves_its_rules(name: str) -> None:
    before, after = fixed(name)
    resolves = set(CASES[name].resolves)
    assert resolves <= violations(before)
    assert not resolves & violations(after)


@pytest.mark.parametrize("name", CASES.keys())
def test_fix_reaches_its_target_values(name: str) -> None:
    _, after = fixed(name)
    for attribute, expected in CASES[name].expect.items():
        if isinstance(expected, float):
            assert after[attribute] == pytest.approx(expected, abs=0.02), attribute
        else:
            assert after[attribute] == expected, attribute


@pytest.mark.parametrize("name", CASES.keys())
def test_fix_leaves_the_rest_no_worse(name: str) -> None:
    before, after = fixed(name)
    assert_no_worse(before, after, fill=not CASES[name].fill_may_drop)
    assert violations(after) <= violations(before)


def test_whitening_touches_no_product_pixel() -> None:
    """A white product (body about 250) on a 250 backdrop: the backdrop turns 255, the product
    keeps its pixels (up to the re-encoding)."""
    kwargs: dict[str, Any] = {"size": (800, 800), **WHITE_PRODUCT}
    data = jpeg(synthetic.render_product(background=(250, 250, 250), **kwargs))
    result = apply_fixes(data, [("whiten_background", {})])
    on_black = np.asarray(synthetic.render_product(background=(0, 0, 0), **kwargs), dtype=int)
    on_green = np.asarray(synthetic.render_product(background=(0, 255, 0), **kwargs), dtype=int)
    opaque = np.all(on_black == on_green, axis=2)
    before = decode_image(data).rgb[opaque].astype(int)
    after = decode_image(result.data).rgb[opaque].astype(int)
    assert np.all(after == 255, axis=1).mean() < 0.001
    assert np.abs(after - before).mean() < 0.5


def test_padding_keeps_every_product_pixel() -> None:
    before, after = fixed("pad-small-product")

    def product_px(attributes: Attributes) -> float:
        width, height = attributes["file.width"], attributes["file.height"]
        return float(attributes["composition.fill_area"]) * width * height

    assert product_px(after) == pytest.approx(product_px(before), rel=0.03)
    assert after["composition.centre_offset"] == pytest.approx(0.0, abs=0.01)


# --- refusals ------------------------------------------------------------------------------------


def framed(background: synthetic.Background) -> bytes:
    image = synthetic.render_product(size=(800, 800), background=background)
    return jpeg(synthetic.add_border(image, 20, (200, 40, 40)))


# id: (fix, image, what the reason says)
REFUSALS: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "whiten-grey": ("whiten_background", lambda: product(background=(128, 128, 128)),
                    "not near-white"),
    "whiten-studio": ("whiten_background", lambda: product(background="studio"),
                      "not near-white"),
    "whiten-scene": ("whiten_background", lambda: product(background="busy"),
                     "no background separates"),
    "whiten-already-white": ("whiten_background", hard_edged_box_png, "already is pure white"),
    "pad-cropped": ("pad_to_fill", lambda: jpeg(synthetic.crop_product(size=(800, 800))),
                    "touches the image edge"),
    "pad-grey": ("pad_to_fill", lambda: product(background=(128, 128, 128), fill=0.5),
                 "background is not white"),
    "pad-offwhite": ("pad_to_fill", lambda: product(background=(250, 250, 250), fill=0.5),
                     "whiten_background first"),
    "pad-at-minimum-size": ("pad_to_fill", lambda: product((500, 500), fill=0.5),
                            "never upscale"),
    "pad-already-there": ("pad_to_fill", product, "already fills"),
    "trim-nothing": ("trim_border", product, "no border found"),
    "trim-grey": ("trim_border", lambda: framed((128, 128, 128)), "frame it anew"),
    "trim-scene": ("trim_border", lambda: framed("busy"), "frame it anew"),
    "downscale-small": ("downscale", product, "within 10000 px"),
    "convert-rgb-jpeg": ("convert_to_srgb_jpeg", product, "already is an RGB JPEG"),
}


@pytest.mark.parametrize("name", REFUSALS.keys())
def test_refusal_says_why(name: str) -> None:
    fix, image, reason = REFUSALS[name]
    with pytest.raises(FixError) as raised:
        apply_fixes(image(), [(fix, {})])
    assert raised.value.fix == fix
    assert raised.value.skipped[0][0] == fix
    assert reason in str(raised.value)


def test_skipped_fixes_are_reported_beside_applied_ones() -> None:
    data = product(background=(250, 250, 250))
    result = apply_fixes(data, [("whiten_background", {}), ("trim_border", {}),
                                ("downscale", {})])
    assert result.applied == ("whiten_background",)
    assert [fix for fix, _ in result.skipped] == ["trim_border", "downscale"]


def test_an_animated_file_is_not_fixed() -> None:
    with pytest.raises(FixError, match="animated"):
        apply_fixes(synthetic.animated_gif_bytes(), [("convert_to_srgb_jpeg", {})])


def test_pad_keeps_the_marketplace_minimum_instead_of_upscaling() -> None:
    data = product((560, 560), fill=0.5)
    result = apply_fixes(data, [("pad_to_fill", {})])
    after = measure(result.data)
    assert (result.width, result.height) == (500, 500)
    assert after["composition.fill_ratio"] == pytest.approx(280 / 500, abs=0.02)


def test_pad_shrinks_a_canvas_past_its_maximum() -> None:
    data = product((1000, 1000), fill=0.97)
    result = apply_fixes(data, [("pad_to_fill", {"max_longest_side": 800})])
    assert (result.width, result.height) == (800, 800)
    assert measure(result.data)["composition.fill_ratio"] == pytest.approx(0.85, abs=0.02)


# --- order and output -----------------------------------------------------------------------------


def test_fixes_run_in_canonical_order_whatever_the_request_order() -> None:
    data = bordered(1200, 0.5, 30)
    asked = [("downscale", {"max_side": 600}), ("pad_to_fill", {}), ("trim_border", {})]
    shuffled = apply_fixes(data, asked)
    canonical = apply_fixes(data, list(reversed(asked)))
    assert shuffled.applied == canonical.applied == ("trim_border", "pad_to_fill", "downscale")
    assert shuffled.data == canonical.data
    assert fix_names()[:4] == ("trim_border", "whiten_background", "pad_to_fill", "downscale")


def test_output_is_a_baseline_444_srgb_jpeg_upright() -> None:
    upright = synthetic.render_product(size=(600, 900), shape="bottle")
    data = synthetic.to_jpeg_bytes(upright, exif_orientation=6)
    result = apply_fixes(data, [("downscale", {"max_side": 800})])
    image = Image.open(io.BytesIO(result.data))
    assert isinstance(image, JpegImagePlugin.JpegImageFile)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (533, 800))
    assert (result.width, result.height) == image.size
    assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4
    assert "progressive" not in image.info and "progression" not in image.info
    assert "icc_profile" not in image.info and "exif" not in image.info


# --- registry and parameters ---------------------------------------------------------------------


def test_registry_describes_every_fix() -> None:
    assert set(fix_names()) == set(FIXES) == {
        "trim_border", "whiten_background", "pad_to_fill", "downscale", "convert_to_srgb_jpeg"}
    for name, definition in FIXES.items():
        assert definition.name == name and definition.description and definition.targets
        assert definition.params.model_config.get("frozen") is True


def test_defaults_validate() -> None:
    params = validate_fix_params("pad_to_fill", {})
    assert params.model_dump() == {"fill_ratio": 0.85, "aspect_ratio": 1.0,
                                   "min_longest_side": 500, "max_longest_side": 10_000}
    assert validate_fix_params("whiten_background", {"min_level": 240}).model_dump()[
        "min_level"] == 240


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sharpen", {}, "unknown fix 'sharpen'; known fixes: trim_border, whiten_background"),
        ("pad_to_fill", {"fill_ratio": 1.5}, "fill_ratio: Input should be less than or equal"),
        ("pad_to_fill", {"min_longest_side": 900, "max_longest_side": 800},
         "min_longest_side must not exceed max_longest_side"),
        ("whiten_background", {"min_level": 300}, "min_level"),
        ("downscale", {"max_side": "big"}, "max_side: Input should be a valid integer"),
        ("trim_border", {"width": 3}, "width: Extra inputs are not permitted"),
    ],
    ids=["unknown", "fill-above-1", "sides-crossed", "level-above-255", "not-a-number",
         "extra-key"],
)
def test_bad_fix_or_params_is_a_value_error(
    name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        validate_fix_params(name, params)
    assert message in str(raised.value)
    with pytest.raises(ValueError):
        apply_fixes(b"not even decoded", [(name, params)])


def test_a_fix_listed_twice_or_none_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        apply_fixes(b"", [("downscale", {}), ("downscale", {"max_side": 900})])
    with pytest.raises(ValueError, match="no fixes"):
        apply_fixes(b"", [])


def test_fix_error_survives_pickling() -> None:
    error = FixError("pad_to_fill", "the product touches the image edge",
                     skipped=(("pad_to_fill", "the product touches the image edge"),),
                     image_id="a")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.fix, copy.reason, copy.skipped, copy.image_id, copy.status, copy.code) == (
        error.fix, error.reason, error.skipped, "a", 422, "fix_not_applicable")
