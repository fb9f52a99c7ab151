"""Background and product masks, and background.* (white fractions).

The background is the region of one colour that is connected to the image edges: its colour is
the dominant colour of the outer ring; pixels within `background_colour_tolerance` of it are
candidates; gaps in the product's outline are closed first, so a white product inside a darker
outline stays product; only candidates connected to an edge are background. Everything else is
product: enclosed holes (a mug's handle) are product by construction, and specks are dropped.

A studio sweep or vignette is not one colour: when the ring is not dominated by one colour, a
smooth quadratic surface is fitted to it (robustly, so a product touching the ring does not pull
it) and pixels are compared with the surface instead.

One module of about 400 lines on purpose: the masks and the white-backdrop verdicts read the same
ring, surface fit and soft-shadow mask, and a threshold tuned in one is judged against the other.

A soft shadow the product casts on the backdrop is darker than the backdrop but keeps its colour
and has no outline. It stays product for fill (as the backdrop's own edge it has no
clean border), but it is marked apart (`soft_shadow`), so that a shadow running off the frame
does not read as the product cut by the frame, and items are counted without it.

A busy photo has no such region. When neither fits most of the ring, or the connected
background is tiny, the image is "not separable": the whole frame is product and the white
fractions are measured on the outer ring.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from models.measurements.thresholds import MeasurementThresholds

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in px, end exclusive

_MAX_RING_SAMPLES = 4096
# Fitting the background surface (mechanics, not thresholds): ring pixels within this many colour
# tolerances of the dominant colour seed the fit; it is refined this many rounds; it needs this
# many supporting pixels; it is evaluated on a coarse grid of this size and resized.
_SURFACE_START_SPREAD = 3
_SURFACE_FIT_ROUNDS = 3
_SURFACE_MIN_PIXELS = 64
_SURFACE_GRID = 32
# A product spanning this much of the frame on its larger axis fills it: a close-up.
CLOSE_UP_MIN_FILL = 0.98


@dataclass(frozen=True)
class Segmentation:
    background: np.ndarray  # H x W uint8, 1 = background
    product: np.ndarray  # H x W uint8, 1 = product (holes filled, specks dropped)
    colour: tuple[int, int, int]  # estimated background colour, RGB levels
    separable: bool  # False: busy photo, no background found; product is the whole frame
    product_box: Box | None  # box around all product pixels; None when there are none
    item_boxes: tuple[Box, ...]  # one per component large enough to be an item
    item_areas: tuple[int, ...]  # px of each of those components, in the same order
    ring: np.ndarray  # (n, 3) uint8 pixels of the outer ring the colour was estimated from
    colour_share: float  # share of the ring within tolerance of `colour` (one colour, no surface)
    # H x W uint8, 1 = soft cast shadow on the backdrop (a part of `product`); all 0 when none
    shadow: np.ndarray | None = None


def ring_width_px(height: int, width: int, thresholds: MeasurementThresholds) -> int:
    return max(2, round(thresholds.background_ring_fraction * min(height, width)))


@functools.lru_cache(maxsize=64)
def ring_coordinates(height: int, width: int, ring_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the pixels within `ring_px` of any edge, each once (cached, read-only:
    uploads come in few sizes)."""
    ring_px = max(1, min(ring_px, height // 2, width // 2))
    band = np.zeros((height, width), dtype=bool)
    band[:ring_px] = band[-ring_px:] = True
    band[:, :ring_px] = band[:, -ring_px:] = True
    rows, columns = np.nonzero(band)
    rows.flags.writeable = False
    columns.flags.writeable = False
    return rows, columns


def dominant_colour(pixels: np.ndarray, tolerance: int) -> tuple[np.ndarray, float]:
    """(colour, share): the most frequent colour of `pixels` (n, 3) and the share within
    `tolerance` levels of it.

    Colours are binned 16 levels per channel; the fullest bin's median is refined once over
    the pixels within `tolerance` of it, which is robust to a product touching the ring.
    """
    if pixels.shape[0] == 0:
        return np.array([255, 255, 255], dtype=np.int16), 0.0
    if pixels.shape[0] > _MAX_RING_SAMPLES:  # a few thousand samples decide a mode as well
        pixels = pixels[:: pixels.shape[0] // _MAX_RING_SAMPLES]
    binned = (pixels >> 4).astype(np.int32)
    index = (binned[:, 0] << 8) | (binned[:, 1] << 4) | binned[:, 2]
    fullest = int(np.bincount(index, minlength=4096).argmax())
    colour = np.median(pixels[index == fullest], axis=0)
    near = np.abs(pixels.astype(np.int16) - colour.astype(np.int16)).max(axis=1) <= tolerance
    if np.any(near):
        colour = np.median(pixels[near], axis=0)
        near = np.abs(pixels.astype(np.int16) - np.rint(colour).astype(np.int16)).max(
            axis=1
        ) <= tolerance
    return np.rint(colour).astype(np.int16), float(near.mean())


def _quadratic_terms(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, 6) design matrix of a quadratic surface in x, y (both -1..1)."""
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)


# The fit is tiny (a few thousand rows, 6 terms): einsum and a 6x6 solve keep it off the
# multi-threaded BLAS, which costs more to wake than the work itself on a busy CPU.
def _least_squares(design: np.ndarray, values: np.ndarray) -> np.ndarray:
    normal = np.einsum("ni,nj->ij", design, design, dtype=np.float64)
    right = np.einsum("ni,nc->ic", design, values, dtype=np.float64)
    return np.linalg.lstsq(normal, right, rcond=None)[0].astype(np.float32)


def _apply(design: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    return np.einsum("ni,ic->nc", design, coefficients)


def fit_surface(
    ring: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    shape: tuple[int, int],
    start_colour: np.ndarray,
    tolerance: int,
) -> tuple[np.ndarray | None, float]:
    """(coefficients (6, 3), share of the ring within `tolerance` of the fit) of a quadratic
    colour surface fitted to the ring; (None, 0.0) when too few pixels support one.

    Starts from the ring pixels near `start_colour` and refits on the inliers, so a product
    touching part of the ring is left out.
    """
    height, width = shape
    if ring.shape[0] > _MAX_RING_SAMPLES:
        step = ring.shape[0] // _MAX_RING_SAMPLES
        ring, rows, columns = ring[::step], rows[::step], columns[::step]
    x = (columns.astype(np.float32) + 0.5) / width * 2 - 1
    y = (rows.astype(np.float32) + 0.5) / height * 2 - 1
    design = _quadratic_terms(x, y)
    values = ring.astype(np.float32)
    inliers = np.abs(values - start_colour).max(axis=1) <= _SURFACE_START_SPREAD * tolerance
    residual = np.full(values.shape[0], np.inf, dtype=np.float32)
    coefficients = None
    for _ in range(_SURFACE_FIT_ROUNDS):
        if np.count_nonzero(inliers) < _SURFACE_MIN_PIXELS:
            return None, 0.0
        coefficients = _least_squares(design[inliers], values[inliers])
        residual = np.abs(_apply(design, coefficients) - values).max(axis=1)
        inliers = residual <= tolerance
    return coefficients, float(np.mean(residual <= tolerance))


def render_surface(coefficients: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """H x W x 3 uint8 image of a fitted surface (evaluated coarsely; it is smooth)."""
    height, width = shape
    grid = min(_SURFACE_GRID, height), min(_SURFACE_GRID, width)
    y, x = np.mgrid[0 : grid[0], 0 : grid[1]].astype(np.float32)
    x = (x.ravel() + 0.5) / grid[1] * 2 - 1
    y = (y.ravel() + 0.5) / grid[0] * 2 - 1
    coarse = _apply(_quadratic_terms(x, y), coefficients).reshape(grid[0], grid[1], 3)
    coarse = np.clip(np.rint(coarse), 0, 255).astype(np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)


def surface_candidates(rgb: np.ndarray, surface: np.ndarray, tolerance: int) -> np.ndarray:
    """uint8 mask, 255 where every channel is within `tolerance` levels of `surface`."""
    return cv2.inRange(cv2.absdiff(rgb, surface), (0, 0, 0), (tolerance,) * 3)


def colour_candidates(rgb: np.ndarray, colour: np.ndarray, tolerance: int) -> np.ndarray:
    """uint8 mask, 255 where every channel is within `tolerance` levels of `colour`."""
    low = tuple(int(v) for v in np.clip(colour.astype(np.int32) - tolerance, 0, 255))
    high = tuple(int(v) for v in np.clip(colour.astype(np.int32) + tolerance, 0, 255))
    return cv2.inRange(rgb, low, high)


def edge_connected(mask: np.ndarray) -> np.ndarray:
    """uint8 0/1: the parts of `mask` (non-zero) 4-connected to an image edge."""
    count, labels = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=4)
    edge_labels = np.unique(
        np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))
    )
    keep = np.zeros(count, dtype=np.uint8)
    keep[edge_labels] = 1
    keep[0] = 0
    return keep[labels]


def background_mask(
    rgb: np.ndarray, reference: np.ndarray, thresholds: MeasurementThresholds
) -> np.ndarray:
    """uint8 0/1 background: pixels of the background colour connected to an edge, outline gaps
    shut. `reference` is one colour (3,) or a per-pixel surface (H x W x 3 uint8)."""
    tolerance = thresholds.background_colour_tolerance
    if reference.ndim == 3:
        candidates = surface_candidates(rgb, reference, tolerance)
    else:
        candidates = colour_candidates(rgb, reference, tolerance)
    size = thresholds.outline_gap_closing_px
    if size > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        closed_product = cv2.morphologyEx(cv2.bitwise_not(candidates), cv2.MORPH_CLOSE, kernel)
        candidates = cv2.bitwise_and(candidates, cv2.bitwise_not(closed_product))
    return edge_connected(candidates)


def product_components(
    product: np.ndarray, thresholds: MeasurementThresholds
) -> tuple[np.ndarray, Box | None, tuple[Box, ...], tuple[int, ...]]:
    """(product without specks, box around it, boxes and px areas of the components big enough
    to be items)."""
    total = product.shape[0] * product.shape[1]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(product, connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = areas >= thresholds.speck_max_area_fraction * total
    keep[0] = False
    if count > 1 and not keep[1:].all():
        product = keep.astype(np.uint8)[labels]
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        return np.zeros_like(product), None, (), ()
    x0 = stats[kept, cv2.CC_STAT_LEFT]
    y0 = stats[kept, cv2.CC_STAT_TOP]
    x1 = x0 + stats[kept, cv2.CC_STAT_WIDTH]
    y1 = y0 + stats[kept, cv2.CC_STAT_HEIGHT]
    box = (int(x0.min()), int(y0.min()), int(x1.max()), int(y1.max()))
    is_item = areas[kept] >= thresholds.item_min_area_fraction * total
    items = tuple(
        (int(a), int(b), int(c), int(d))
        for a, b, c, d in zip(x0[is_item], y0[is_item], x1[is_item], y1[is_item], strict=True)
    )
    return product, box, items, tuple(int(a) for a in areas[kept][is_item])


def segment(rgb: np.ndarray, thresholds: MeasurementThresholds) -> Segmentation:
    """Split an H x W x 3 uint8 image into background and product."""
    height, width = rgb.shape[:2]
    rows, columns = ring_coordinates(height, width, ring_width_px(height, width, thresholds))
    ring = rgb[rows, columns]
    tolerance = thresholds.background_colour_tolerance
    colour, share = dominant_colour(ring, tolerance)
    colour_share = share
    colour_rgb = (int(colour[0]), int(colour[1]), int(colour[2]))
    reference: np.ndarray = colour
    if share < thresholds.background_uniform_ring_share:
        coefficients, fitted = fit_surface(ring, rows, columns, (height, width), colour, tolerance)
        if coefficients is not None and fitted >= share + thresholds.background_surface_min_gain:
            reference, share = render_surface(coefficients, (height, width)), fitted
    background = None
    if share >= thresholds.background_ring_min_share:
        background = background_mask(rgb, reference, thresholds)
        if np.count_nonzero(background) < thresholds.min_background_fraction * height * width:
            background = None
    if background is None:
        whole: Box = (0, 0, width, height)
        return Segmentation(
            background=np.zeros((height, width), dtype=np.uint8),
            product=np.ones((height, width), dtype=np.uint8),
            colour=colour_rgb,
            separable=False,
            product_box=whole,
            item_boxes=(whole,),
            item_areas=(height * width,),
            ring=ring,
            colour_share=colour_share,
        )
    product, box, items, item_areas = product_components(1 - background, thresholds)
    # Only a product reaching the frame's edge needs its shadow told apart (17 ms a frame).
    reaches_edge = bool(product[0].any() or product[-1].any() or product[:, 0].any()
                        or product[:, -1].any())
    shadow = (soft_shadow(rgb, reference, background, thresholds) & product
              if reaches_edge else None)
    if shadow is not None and shadow.any():
        # Items are counted without the shadow: the shadows of things set close together (pots
        # on a table) join them into one component.
        _, _, items, item_areas = product_components(product & (1 - shadow), thresholds)
    return Segmentation(
        background=background,
        product=product,
        colour=colour_rgb,
        separable=True,
        product_box=box,
        item_boxes=items,
        item_areas=item_areas,
        ring=ring,
        colour_share=colour_share,
        shadow=shadow,
    )


def soft_shadow(rgb: np.ndarray, reference: np.ndarray, background: np.ndarray,
                thresholds: MeasurementThresholds) -> np.ndarray:
    """uint8 0/1: the soft shadow cast on the backdrop, next to the background.

    A shadow pixel is the backdrop darkened: every channel scaled by about the same factor
    (`shadow_max_tint` apart), between `shadow_min_level_ratio` and 1 of the backdrop. A
    shadow has no outline: pixels near a grey step steeper than `shadow_max_edge_levels`
    levels per px (on a lightly blurred copy), gaps up to `shadow_edge_closing_px` closed,
    block it, so it cannot run from the backdrop into a product's own shading through a gap in
    the product's outline. Only regions connected to the background count.
    """
    ratio = (rgb.astype(np.float32) + 1.0) / (reference.astype(np.float32) + 1.0)
    # Per channel plane: numpy's reductions over the 3-wide last axis cost 4x more (12 ms on a
    # 512 px frame against 3).
    red, green, blue = cv2.split(ratio)
    level = (red + green + blue) / 3
    tint = cv2.max(cv2.max(cv2.absdiff(red, level), cv2.absdiff(green, level)),
                   cv2.absdiff(blue, level))
    grey = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0)
    steepness = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3),
                              cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)) / 8  # levels per px
    size = thresholds.shadow_edge_closing_px
    outline = cv2.morphologyEx(
        (steepness > thresholds.shadow_max_edge_levels).astype(np.uint8), cv2.MORPH_CLOSE,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    darkened = ((level >= thresholds.shadow_min_level_ratio) & (level < 1.0)
                & (tint <= thresholds.shadow_max_tint) & (outline == 0))
    reachable = (darkened | (background > 0)).astype(np.uint8)
    count, labels = cv2.connectedComponents(reachable, connectivity=4)
    keep = np.zeros(count, dtype=np.uint8)
    keep[np.unique(labels[background > 0])] = 1
    keep[0] = 0
    return keep[labels] & (1 - background)


def white_fractions(
    rgb: np.ndarray, segmentation: Segmentation, thresholds: MeasurementThresholds
) -> tuple[float, float]:
    """(near-white share, pure-white share) of the background, or of the outer ring when no
    background separates (busy photo).

    A pixel is near-white when every channel is at least `near_white_min_level`; on a softly
    shaded light backdrop (see `is_shaded_white_backdrop`) down to its shading floor instead.
    """
    level = thresholds.near_white_min_level
    if not segmentation.separable:
        ring = segmentation.ring
        if ring.shape[0] == 0:
            return 0.0, 0.0
        near = np.all(ring >= level, axis=1)
        pure = np.all(ring == 255, axis=1)
        return float(near.mean()), float(pure.mean())
    background = segmentation.background
    count = np.count_nonzero(background)
    if count == 0:
        return 0.0, 0.0
    lightness, spread = lightness_and_spread(rgb)
    if is_shaded_white_backdrop(lightness, spread, segmentation, thresholds):
        near_mask = cv2.bitwise_and(
            cv2.inRange(lightness, thresholds.white_backdrop_shading_floor, 255),
            cv2.inRange(spread, 0, thresholds.white_backdrop_max_spread),
        )
    else:
        near_mask = cv2.inRange(lightness, level, 255)
    pure_mask = cv2.inRange(lightness, 255, 255)
    near_count = np.count_nonzero(cv2.bitwise_and(near_mask, near_mask, mask=background))
    pure_count = np.count_nonzero(cv2.bitwise_and(pure_mask, pure_mask, mask=background))
    return near_count / count, pure_count / count


def is_white_backdrop(white: float, pure_white: float, fill_ratio: float,
                      thresholds: MeasurementThresholds) -> bool:
    """background.is_white from the white fractions: mostly near-white, or, on a close-up that
    spans the frame, slivers of a backdrop blown out to pure white."""
    if white >= thresholds.white_background_min_fraction:
        return True
    return bool(fill_ratio >= CLOSE_UP_MIN_FILL
                and pure_white >= thresholds.close_up_min_pure_white
                and pure_white >= thresholds.close_up_min_pure_share * white)


def lightness_and_spread(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(darkest channel, brightest minus darkest channel) per pixel, H x W uint8 each."""
    red, green, blue = cv2.split(rgb)
    darkest = cv2.min(cv2.min(red, green), blue)
    brightest = cv2.max(cv2.max(red, green), blue)
    return darkest, cv2.subtract(brightest, darkest)


def is_shaded_white_backdrop(
    lightness: np.ndarray,
    spread: np.ndarray,
    segmentation: Segmentation,
    thresholds: MeasurementThresholds,
) -> bool:
    """True when the background is one light, neutral backdrop that surrounds the product: white
    to a person even where its shading falls under the near-white level.

    Judged on the backdrop as a whole (its median level and tint, and how much of the frame's
    edge it explains), not pixel by pixel, so the darker side of a soft sweep does not make it
    grey, and a bright patch in a scene (sky, a lit wall) does not make the scene white.
    """
    if segmentation.colour_share < thresholds.white_backdrop_min_ring_share:
        return False
    mask = segmentation.background
    return (
        masked_median(lightness, mask) >= thresholds.white_backdrop_min_median_level
        and masked_median(spread, mask) <= thresholds.white_backdrop_max_spread
    )


def masked_median(values: np.ndarray, mask: np.ndarray) -> int:
    """Median of the uint8 `values` where `mask` is non-zero (0 when the mask is empty)."""
    histogram = cv2.calcHist([values], [0], mask, [256], [0, 256]).ravel()
    total = histogram.sum()
    if total == 0:
        return 0
    return int(np.searchsorted(np.cumsum(histogram), total / 2))
