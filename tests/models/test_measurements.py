"""models.measurements: scaling, exposure, sharpness, colour and hashes on known images."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest
from PIL import Image

from models.decode import decode_image
from models.measurements import background, color, exposure, hashes, sharpness
from models.measurements.scaling import (
    resize_longest_to,
    scaled_size,
    shrink_by_whole_factor,
    shrink_to,
)
from tests.models.scenes import (
    IMAGES,
    SIZE,
    TH,
    analysis_copy,
    decoded,
    segmented,
)
from tests.support import synthetic

# --- scaling ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "max_side", "expected"),
    [((1000, 800), 640, (640, 512)), ((300, 200), 640, (300, 200)), ((1, 5000), 512, (1, 512))],
    ids=["shrinks", "never-enlarges", "keeps-one-px"],
)
def test_scaled_size(shape: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    assert scaled_size(*shape, max_side) == expected


@pytest.mark.parametrize(
    ("shape", "expected"), [((1000, 1000), (500, 500)), ((1024, 700), (512, 350)),
                            ((1580, 1274), (395, 318)), ((400, 300), (400, 300))],
    ids=["half", "exact-512", "quarter", "small-untouched"],
)
def test_shrink_by_whole_factor(shape: tuple[int, int], expected: tuple[int, int]) -> None:
    image = np.zeros((*shape, 3), dtype=np.uint8)
    assert shrink_by_whole_factor(image, 512).shape[:2] == expected


def test_resize_longest_to_enlarges_and_shrinks() -> None:
    assert resize_longest_to(np.zeros((100, 50), np.uint8), 512).shape == (512, 256)
    assert resize_longest_to(np.zeros((1024, 2048), np.uint8), 512).shape == (256, 512)
    assert shrink_to(np.zeros((1000, 500, 3), np.uint8), 640).shape == (640, 320, 3)


# --- exposure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("levels", "mean", "dark", "bright", "contrast"),
    [([0], 0.0, 1.0, 0.0, 0.0), ([255], 1.0, 0.0, 1.0, 0.0), ([0, 255], 0.5, 0.5, 0.5, 0.5),
     ([5, 6, 249, 250], 0.5, 0.25, 0.25, 0.478)],
    ids=["black", "white", "half-half", "clip-edges"],
)
def test_exposure_from_histogram(levels: list[int], mean: float, dark: float, bright: float,
                                 contrast: float) -> None:
    grey = np.array(levels * 25, dtype=np.uint8).reshape(-1, len(levels))
    result = exposure.measure_exposure(exposure.luma_histogram(grey, None), TH)
    assert result.mean == pytest.approx(mean, abs=0.005)
    assert result.clipped_dark == pytest.approx(dark)
    assert result.clipped_bright == pytest.approx(bright)
    assert result.contrast == pytest.approx(contrast, abs=0.005)


def test_exposure_is_measured_on_the_product_only() -> None:
    copy, segmentation = segmented("white")
    grey = cv2.cvtColor(copy, cv2.COLOR_RGB2GRAY)
    on_product = exposure.measure_exposure(exposure.luma_histogram(grey, segmentation.product), TH)
    whole = exposure.measure_exposure(exposure.luma_histogram(grey, None), TH)
    assert on_product.clipped_bright < 0.05  # the white background is not counted
    assert whole.clipped_bright > 0.3
    assert 0.3 < on_product.mean < 0.6


# --- sharpness --------------------------------------------------------------------------------


def product_sharpness(image: Image.Image) -> float:
    rgb = decoded(image)
    copy = shrink_by_whole_factor(rgb, TH.analysis_max_side_px)
    segmentation = background.segment(copy, TH)
    x0, y0, x1, y1 = segmentation.product_box or (0, 0, copy.shape[1], copy.shape[0])
    scale = rgb.shape[0] / copy.shape[0]
    crop = rgb[round(y0 * scale) : round(y1 * scale), round(x0 * scale) : round(x1 * scale)]
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return sharpness.laplacian_variance(grey, segmentation.product[y0:y1, x0:x1], TH)


@cache
def sharp_product() -> Image.Image:
    return synthetic.render_product(size=(1000, 1000), shape="bottle", seed=5)


@pytest.mark.parametrize("radius", [2.0, 3.0, 5.0], ids=lambda r: f"blur{r:g}px")
def test_blur_lowers_sharpness_below_the_policy_line(radius: float) -> None:
    sharp = product_sharpness(sharp_product())
    blurred = product_sharpness(synthetic.blur(sharp_product(), radius))
    assert sharp > 5 * TH.sharpness_blurred_below
    assert blurred < sharp / 5
    if radius >= 3:
        assert blurred < TH.sharpness_blurred_below


def test_sharpness_is_comparable_across_sizes() -> None:
    # Comparable once the box is shrunk to the fixed scale (here about 1.7x and 3.3x).
    medium = product_sharpness(synthetic.render_product(size=(1000, 1000), seed=2))
    large = product_sharpness(synthetic.render_product(size=(2000, 2000), seed=2))
    assert 0.5 < medium / large < 2.0


def test_a_sharp_small_product_is_not_read_as_blurred() -> None:
    # Measured as it is, not enlarged to the scale (which would blur it): the small file is the
    # size rules' business. Blurring it still shows.
    small = synthetic.render_product(size=(250, 250), seed=2)
    assert product_sharpness(small) > TH.sharpness_blurred_below
    assert product_sharpness(synthetic.blur(small, 2.0)) < product_sharpness(small) / 3


def test_sharpness_ignores_the_empty_background() -> None:
    grey = np.full((200, 200), 255, dtype=np.uint8)
    grey[50:150, 50:150] = np.random.default_rng(0).integers(0, 255, (100, 100), dtype=np.uint8)
    mask = np.zeros((200, 200), dtype=np.uint8)
    mask[50:150, 50:150] = 1
    assert sharpness.laplacian_variance(grey, mask, TH) > sharpness.laplacian_variance(
        grey, None, TH)


@pytest.mark.parametrize(("variance", "score"), [(0.0, 0.0), (100.0, 0.5), (300.0, 0.75)],
                         ids=["zero", "half-point", "three-halves"])
def test_sharpness_score(variance: float, score: float) -> None:
    assert sharpness.sharpness_score(variance, TH) == pytest.approx(score)


# --- colour -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "grayscale"),
    [(lambda: synthetic.grey_in_rgb(size=SIZE), True),
     (lambda: IMAGES["white"](), False),
     (lambda: synthetic.render_product(size=SIZE, fill=0.3, product_colour=(160, 140, 120)),
      False)],
    ids=["grey-in-rgb", "coloured-product", "small-muted-product"],
)
def test_grayscale(make, grayscale: bool) -> None:
    histogram = color.channel_spread_histogram(analysis_copy(make()))
    assert color.is_grayscale(histogram, TH) is grayscale


def test_a_small_coloured_logo_breaks_grayscale() -> None:
    pixels = np.asarray(synthetic.grey_in_rgb(size=SIZE)).copy()
    pixels[10:100, 10:100] = (200, 30, 30)  # 2.3 % of the frame
    histogram = color.channel_spread_histogram(analysis_copy(Image.fromarray(pixels)))
    assert not color.is_grayscale(histogram, TH)


# --- hashes -----------------------------------------------------------------------------------


def test_md5_depends_on_pixels_and_shape_not_container() -> None:
    pixels = np.asarray(IMAGES["white"]())
    from_png = decode_image(synthetic.to_png_bytes(Image.fromarray(pixels))).rgb
    from_tiff = np.ascontiguousarray(pixels)
    assert hashes.pixel_md5(from_png) == hashes.pixel_md5(from_tiff)
    flat = pixels.reshape(300, 1200, 3)
    assert hashes.pixel_md5(flat) != hashes.pixel_md5(pixels)
    assert len(hashes.pixel_md5(pixels)) == 32


def _hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_phash_matches_near_duplicates_only() -> None:
    image = IMAGES["white"]()
    original = hashes.perceptual_hash(analysis_copy(image))
    recompressed = hashes.perceptual_hash(
        shrink_by_whole_factor(decoded(image.resize((450, 450)), quality=40), 512))
    other = hashes.perceptual_hash(analysis_copy(IMAGES["two-items"]()))
    assert len(original) == 16 and int(original, 16) >= 0
    assert _hamming(original, recompressed) <= 6
    assert _hamming(original, other) >= 12
