"""models.decode: every colour mode to upright 8-bit sRGB; every failure to a coded ImageError."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from curator.contracts.errors import ImageError
from models.decode import DecodeLimits, decode_image
from tests.support import synthetic

RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 210, 30)


def quadrants(width: int = 120, height: int = 80) -> Image.Image:
    """Four flat colours: red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height // 2, : width // 2] = RED
    pixels[: height // 2, width // 2 :] = GREEN
    pixels[height // 2 :, : width // 2] = BLUE
    pixels[height // 2 :, width // 2 :] = YELLOW
    return Image.fromarray(pixels)


def quadrant_colours(rgb: np.ndarray) -> list[tuple[int, int, int]]:
    """Colour at the centre of each quadrant: top-left, top-right, bottom-left, bottom-right."""
    height, width = rgb.shape[:2]
    points = [(height // 4, width // 4), (height // 4, 3 * width // 4),
              (3 * height // 4, width // 4), (3 * height // 4, 3 * width // 4)]
    return [tuple(int(c) for c in rgb[y, x]) for y, x in points]


def assert_close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> None:
    assert max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= tolerance, (
        actual, expected)


@pytest.fixture(scope="module")
def product() -> Image.Image:
    return synthetic.render_product(size=(240, 200), fill=0.8, seed=3)


def test_jpeg_rgb_basics(product: Image.Image) -> None:
    data = synthetic.to_jpeg_bytes(product, quality=95)
    decoded = decode_image(data)
    assert decoded.format == "JPEG"
    assert decoded.color_mode == "RGB"
    assert decoded.rgb.shape == (200, 240, 3)
    assert decoded.rgb.dtype == np.uint8
    assert decoded.rgb.flags["C_CONTIGUOUS"]
    assert not decoded.rgb.flags["WRITEABLE"]
    assert decoded.n_bytes == len(data)
    assert decoded.animated is False
    assert (decoded.width, decoded.height) == (240, 200)
    original = np.asarray(product, dtype=np.int16)
    assert np.abs(decoded.rgb.astype(np.int16) - original).mean() < 3


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8], ids=lambda o: f"exif{o}")
def test_exif_orientation_is_applied(orientation: int) -> None:
    data = synthetic.to_jpeg_bytes(quadrants(), quality=95, exif_orientation=orientation)
    stored = Image.open(io.BytesIO(data))
    if orientation >= 5:  # stored turned by 90 degrees
        assert stored.size == (80, 120)
    decoded = decode_image(data)
    assert decoded.rgb.shape == (80, 120, 3)
    for actual, expected in zip(quadrant_colours(decoded.rgb), [RED, GREEN, BLUE, YELLOW],
                                strict=True):
        assert_close(actual, expected, tolerance=12)


def test_cmyk_jpeg_decodes_to_sensible_rgb(product: Image.Image) -> None:
    decoded = decode_image(synthetic.to_cmyk_jpeg_bytes(product))
    assert decoded.color_mode == "CMYK"
    assert decoded.rgb.shape == (200, 240, 3)
    original = np.asarray(product, dtype=np.int16)
    assert np.abs(decoded.rgb.astype(np.int16) - original).mean() < 4
    assert_close(tuple(int(c) for c in decoded.rgb[2, 2]), (255, 255, 255), tolerance=4)


def test_cmyk_with_an_unusable_icc_profile_falls_back(product: Image.Image) -> None:
    data = synthetic.to_cmyk_jpeg_bytes(product, icc_profile=b"not an icc profile" * 8)
    assert Image.open(io.BytesIO(data)).info.get("icc_profile")
    decoded = decode_image(data)
    original = np.asarray(product, dtype=np.int16)
    assert np.abs(decoded.rgb.astype(np.int16) - original).mean() < 4


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    decoded = decode_image(synthetic.to_png16_bytes(Image.fromarray(ramp, "L")))
    assert decoded.color_mode == "I;16"
    assert decoded.rgb.shape == (16, 256, 3)
    assert np.array_equal(decoded.rgb[:, :, 0], ramp)
    assert np.array_equal(decoded.rgb[:, :, 0], decoded.rgb[:, :, 2])


def test_sixteen_bit_mid_grey_stays_mid_grey() -> None:
    mid = np.full((8, 8), 32768, dtype=np.uint16)
    data = synthetic.to_png_bytes(Image.fromarray(mid))
    assert int(decode_image(data).rgb[0, 0, 0]) == 128


def test_alpha_is_composited_on_white() -> None:
    rgba = synthetic.transparent_product(size=(120, 160), fill=0.8)
    decoded = decode_image(synthetic.to_png_bytes(rgba))
    assert decoded.color_mode == "RGBA"
    assert tuple(int(c) for c in decoded.rgb[0, 0]) == (255, 255, 255)  # hidden colour: black
    centre = tuple(int(c) for c in decoded.rgb[120, 60])
    assert centre == tuple(int(c) for c in np.asarray(rgba)[120, 60, :3])


def test_palette_with_transparency_is_composited_on_white() -> None:
    rgba = synthetic.transparent_product(size=(120, 160), fill=0.8)
    decoded = decode_image(synthetic.to_palette_png_bytes(rgba))
    assert decoded.color_mode == "P"
    assert tuple(int(c) for c in decoded.rgb[0, 0]) == (255, 255, 255)
    opaque = np.asarray(rgba)[:, :, 3] >= 128
    original = np.asarray(rgba)[:, :, :3][opaque].mean(axis=0)
    assert np.abs(decoded.rgb[opaque].mean(axis=0) - original).max() < 8


def test_grey_with_alpha_is_composited_on_white() -> None:
    grey_alpha = Image.new("LA", (20, 20), (0, 0))
    grey_alpha.paste((60, 255), (5, 5, 15, 15))
    decoded = decode_image(synthetic.to_png_bytes(grey_alpha))
    assert decoded.color_mode == "LA"
    assert tuple(int(c) for c in decoded.rgb[0, 0]) == (255, 255, 255)
    assert tuple(int(c) for c in decoded.rgb[10, 10]) == (60, 60, 60)


@pytest.mark.parametrize("mode", ["L", "1", "P"], ids=["grey", "bilevel", "palette"])
def test_other_modes_become_rgb(mode: str) -> None:
    image = quadrants().convert(mode)
    decoded = decode_image(synthetic.to_png_bytes(image))
    assert decoded.color_mode == mode
    assert decoded.rgb.shape == (80, 120, 3)
    expected = np.asarray(image.convert("RGB"))
    assert np.array_equal(decoded.rgb, expected)


def test_animated_gif_gives_its_first_frame() -> None:
    decoded = decode_image(synthetic.animated_gif_bytes(colours=[(200, 30, 30), (30, 200, 30)]))
    assert decoded.format == "GIF"
    assert decoded.animated is True
    assert_close(tuple(int(c) for c in decoded.rgb[5, 5]), (200, 30, 30), tolerance=6)


def test_single_frame_gif_is_not_animated() -> None:
    decoded = decode_image(synthetic.animated_gif_bytes(colours=[(30, 30, 200)]))
    assert decoded.animated is False


@pytest.mark.parametrize("file_format", ["WEBP", "TIFF", "PNG"], ids=str.lower)
def test_other_allowed_formats(file_format: str) -> None:
    out = io.BytesIO()
    quadrants().save(out, file_format, **({"lossless": True} if file_format == "WEBP" else {}))
    decoded = decode_image(out.getvalue())
    assert decoded.format == file_format
    assert quadrant_colours(decoded.rgb) == [RED, GREEN, BLUE, YELLOW]


def test_dpi_is_read_when_recorded() -> None:
    out = io.BytesIO()
    quadrants().save(out, "JPEG", dpi=(300, 300))
    assert decode_image(out.getvalue()).dpi == pytest.approx(300.0)


def test_dpi_is_none_when_absent() -> None:
    assert decode_image(synthetic.to_png_bytes(quadrants())).dpi is None


# --- errors -----------------------------------------------------------------------------------


def _jpeg() -> bytes:
    return synthetic.to_jpeg_bytes(quadrants())


def _bmp() -> bytes:
    out = io.BytesIO()
    quadrants().save(out, "BMP")
    return out.getvalue()


ERROR_CASES = {
    "empty": (b"", DecodeLimits(), "empty_image"),
    "too-many-bytes": (_jpeg(), DecodeLimits(max_bytes=100), "image_too_large"),
    "bmp": (_bmp(), DecodeLimits(), "unsupported_format"),
    "text": (b"<html>not an image</html>", DecodeLimits(), "unsupported_format"),
    "png-not-allowed": (synthetic.to_png_bytes(quadrants()),
                        DecodeLimits(allowed_formats=frozenset({"JPEG"})), "unsupported_format"),
    "truncated-jpeg": (_jpeg()[: len(_jpeg()) // 2], DecodeLimits(), "corrupt_image"),
    "jpeg-magic-then-garbage": (b"\xff\xd8\xff" + bytes(range(256)) * 4, DecodeLimits(),
                                "corrupt_image"),
    "truncated-png": (synthetic.to_png_bytes(quadrants())[:60], DecodeLimits(), "corrupt_image"),
    "pixels-over-our-limit": (synthetic.bomb_png_header(8000, 8000), DecodeLimits(),
                              "too_many_pixels"),
    "pillow-bomb": (synthetic.bomb_png_header(30_000, 30_000), DecodeLimits(), "too_many_pixels"),
    "small-limit": (_jpeg(), DecodeLimits(max_pixels=100), "too_many_pixels"),
}


@pytest.mark.parametrize(("data", "limits", "code"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_errors_have_stable_codes(data: bytes, limits: DecodeLimits, code: str) -> None:
    with pytest.raises(ImageError) as caught:
        decode_image(data, limits)
    assert caught.value.code == code
    assert caught.value.status == 422
    assert caught.value.message


def test_bomb_is_refused_even_when_pillow_would_allow_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageError) as caught:
        decode_image(synthetic.bomb_png_header(8000, 8000))
    assert caught.value.code == "too_many_pixels"


def _mutations() -> list[bytes]:
    """Seeded byte flips, cuts and splices of small valid files."""
    rng = random.Random(7)
    seeds = [
        synthetic.to_jpeg_bytes(synthetic.render_product(size=(64, 48), seed=1)),
        synthetic.to_png_bytes(quadrants(40, 30)),
        synthetic.animated_gif_bytes(size=(20, 10)),
    ]
    cases = []
    for original in seeds:
        for _ in range(20):
            data = bytearray(original)
            for _ in range(rng.randint(1, 12)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(8, len(data))]
            cases.append(bytes(data))
    return cases


def test_no_pillow_exception_escapes() -> None:
    decoded = failed = 0
    for data in _mutations():
        try:
            result = decode_image(data)
        except ImageError as error:
            assert error.code in {"corrupt_image", "unsupported_format", "too_many_pixels"}
            failed += 1
        else:
            assert result.rgb.ndim == 3 and result.rgb.shape[2] == 3
            decoded += 1
    assert failed > 0  # the mutations do break files
