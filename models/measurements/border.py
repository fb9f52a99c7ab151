"""frame.border: a uniform, non-white band along an edge that ends abruptly.

Measured at full resolution (a 1 px line vanishes in a downscaled copy), but only on the outer
`border_max_width_fraction` of each side, and only past the first line when that line is uniform
and not white, so a typical packshot costs four short checks.

A band is the run of uniform lines from the edge inward. It is a border when it is at most
`border_max_width_fraction` deep, does not drift in colour (a gradient does), and the line just
inside it (past a few blended transition lines) differs from it along nearly its whole length. A
uniform backdrop that simply continues inward, or only changes where the product starts, is not a
border. (A perfectly rectangular product filling a uniform backdrop up to a thin margin looks
exactly like a framed picture, and is reported as one.) Inside a frame already found, a light
(even white) gap that ends at a second thin line is part of the frame: a double-line frame is
cropped past its inner line.

A photo set inside a drawn shape (hexagon, rounded rectangle, a deep mat) on a flat card leaves
a margin that is no straight band. When no band is found and the outermost line is one flat
non-white colour, that colour is flooded in from the edges on a small copy; the region it
encloses is a framed photo when it is large, convex and lined by one smooth backdrop colour (the
photo's own). A product filling a coloured backdrop is lined by its textured, shaded surface
instead; a promo tile whose backdrop was recoloured encloses no second backdrop at all.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import cv2
import numpy as np

from models.measurements.thresholds import MeasurementThresholds

# Lines longer than this are sampled with a stride; uniformity needs no more samples.
_MAX_SAMPLES_PER_LINE = 1024
# The lining of a drawn shape is read this many px inside its outline (past blended pixels), over
# this many px (on the shrunk copy).
_LINING_SKIP_PX = 2
_LINING_DEPTH_PX = 3


@dataclass(frozen=True)
class Border:
    """Band widths in px per edge (0: none), and the crop that lies inside them."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0
    # Pixels cropped per edge (band plus transition lines); equal to 0 where there is no band.
    inset_top: int = 0
    inset_bottom: int = 0
    inset_left: int = 0
    inset_right: int = 0

    @property
    def found(self) -> bool:
        return any((self.top, self.bottom, self.left, self.right))

    def inner_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the content inside the border."""
        return (self.inset_top, height - self.inset_bottom, self.inset_left,
                width - self.inset_right)


def detect_border(rgb: np.ndarray, thresholds: MeasurementThresholds) -> Border:
    """Find border bands on the four edges of an H x W x 3 uint8 image.

    Frames nest (a black mat around a thin coloured line): after one is found the search is
    repeated inside it, up to `border_max_nesting` times; widths and insets add up.
    """
    total = Border()
    for level in range(thresholds.border_max_nesting):
        y0, y1, x0, x1 = total.inner_box(*rgb.shape[:2])
        found = _detect_once(rgb[y0:y1, x0:x1], thresholds, nested=level > 0)
        if not found.found:
            break
        total = Border(
            *(a + b for a, b in zip(astuple(total), astuple(found), strict=True))
        )
    if not total.found:
        total = detect_shaped_frame(rgb, thresholds)
    return total


def detect_shaped_frame(rgb: np.ndarray, thresholds: MeasurementThresholds) -> Border:
    """A photo inside a drawn shape on a flat card: the margin per edge (to the shape's bounding
    box), cropped with it; no border when the edge is not one flat non-white colour or what it
    encloses is not a large convex region lined by a backdrop."""
    height, width = rgb.shape[:2]
    card = _flat_card_colour(rgb, thresholds)
    if card is None:
        return Border()
    factor = max(1, -(-max(height, width) // thresholds.border_shape_analysis_px))
    small = cv2.resize(rgb, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    margin = _flood_from_edges(small, card, thresholds.border_shape_colour_tolerance)
    shape = _largest_region(cv2.bitwise_not(margin))
    if shape is None or not _is_framed_photo(small, shape, thresholds):
        return Border()
    x, y, box_w, box_h = cv2.boundingRect(shape)
    scale_y, scale_x = height / small.shape[0], width / small.shape[1]
    top, left = int(y * scale_y), int(x * scale_x)
    bottom = height - min(height, round((y + box_h) * scale_y))
    right = width - min(width, round((x + box_w) * scale_x))
    return Border(top=top, bottom=bottom, left=left, right=right, inset_top=top,
                  inset_bottom=bottom, inset_left=left, inset_right=right)


def _flat_card_colour(rgb: np.ndarray, thresholds: MeasurementThresholds) -> np.ndarray | None:
    """The colour of the outermost line when it is one flat non-white colour, else None."""
    outer = np.concatenate((rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]))
    if outer.shape[0] > 4 * _MAX_SAMPLES_PER_LINE:
        outer = outer[:: outer.shape[0] // (4 * _MAX_SAMPLES_PER_LINE)]
    colour = np.median(outer, axis=0).astype(np.int16)
    if bool(np.all(colour >= thresholds.near_white_min_level)):
        return None
    share = _uniform_share(outer[None], colour, thresholds.border_shape_colour_tolerance)[0]
    return colour if share >= thresholds.border_line_uniform_fraction else None


def _flood_from_edges(rgb: np.ndarray, colour: np.ndarray, tolerance: int) -> np.ndarray:
    """uint8 mask (255) of the pixels within `tolerance` of `colour` 4-connected to an edge."""
    low = tuple(int(v) for v in np.clip(colour - tolerance, 0, 255))
    high = tuple(int(v) for v in np.clip(colour + tolerance, 0, 255))
    candidates = cv2.inRange(rgb, low, high)
    count, labels = cv2.connectedComponents(candidates, connectivity=4)
    edge = np.unique(np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1])))
    keep = np.zeros(count, dtype=np.uint8)
    keep[edge] = 255
    keep[0] = 0
    return keep[labels]


def _largest_region(mask: np.ndarray) -> np.ndarray | None:
    """uint8 0/1 mask of the largest 8-connected region of `mask`, None when it is empty."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == largest).astype(np.uint8)


def _is_framed_photo(
    rgb: np.ndarray, shape: np.ndarray, thresholds: MeasurementThresholds
) -> bool:
    """Large, convex, and lined by one backdrop colour just inside its outline."""
    area = int(np.count_nonzero(shape))
    if area < thresholds.border_shape_min_area_fraction * shape.size:
        return False
    contours, _ = cv2.findContours(shape, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max(contours, key=cv2.contourArea)
    hull_area = cv2.contourArea(cv2.convexHull(outline))
    if hull_area <= 0 or area / hull_area < thresholds.border_shape_min_solidity:
        return False
    # The outline's own pixels may blend with the card (anti-aliasing, JPEG): look a little in.
    kernel = np.ones((3, 3), dtype=np.uint8)
    outer = cv2.erode(shape, kernel, iterations=_LINING_SKIP_PX)
    inner = cv2.erode(shape, kernel, iterations=_LINING_SKIP_PX + _LINING_DEPTH_PX)
    lining = rgb[(outer > 0) & (inner == 0)]
    if lining.shape[0] == 0:
        return False
    colour = np.median(lining, axis=0).astype(np.int16)
    share = _uniform_share(lining[None], colour, thresholds.border_shape_colour_tolerance)[0]
    return bool(share >= thresholds.border_shape_min_lining_share)


def _detect_once(
    rgb: np.ndarray, thresholds: MeasurementThresholds, nested: bool = False
) -> Border:
    """One level of bands. `nested`: inside a frame already found, where a light gap that ends at
    a second thin line (a double-line frame) is part of the frame too."""
    height, width = rgb.shape[:2]
    # Each edge as (lines, samples, 3) with line 0 on the edge.
    depth_rows = _max_depth(height, thresholds)
    depth_cols = _max_depth(width, thresholds)
    lines_needed_rows = depth_rows + thresholds.border_transition_lines + 1
    lines_needed_cols = depth_cols + thresholds.border_transition_lines + 1
    # Too small to hold a band and something inside it on both sides.
    if height < 2 * lines_needed_rows + 1 or width < 2 * lines_needed_cols + 1:
        return Border()
    row_step = max(1, width // _MAX_SAMPLES_PER_LINE)
    col_step = max(1, height // _MAX_SAMPLES_PER_LINE)
    edges = {
        "top": rgb[:lines_needed_rows, ::row_step],
        "bottom": rgb[: height - lines_needed_rows - 1 : -1, ::row_step],
        "left": rgb[::col_step, :lines_needed_cols].transpose(1, 0, 2),
        "right": rgb[::col_step, : width - lines_needed_cols - 1 : -1].transpose(1, 0, 2),
    }
    depth = {"top": depth_rows, "bottom": depth_rows, "left": depth_cols, "right": depth_cols}
    bands = {name: band_run(lines, depth[name], thresholds, allow_white=nested)
             for name, lines in edges.items()}
    if not any(width_px for width_px, _ in bands.values()):
        return Border()
    # Just inside a band, look only between the bands of the neighbouring edges.
    neighbours = {
        "top": ("left", "right"),
        "bottom": ("left", "right"),
        "left": ("top", "bottom"),
        "right": ("top", "bottom"),
    }
    found: dict[str, int] = {}
    skip = thresholds.border_transition_lines
    for name, (band_width, colour) in bands.items():
        if band_width == 0 or colour is None:
            found[name] = 0
            continue
        first, last = neighbours[name]
        step = row_step if name in ("top", "bottom") else col_step
        start = (bands[first][0] + skip) // step
        stop = edges[name].shape[1] - (bands[last][0] + skip) // step
        # Nested, the line that ends the gap may be thinner than the transition lines.
        first_inside = band_width if nested else band_width + skip
        found[name] = band_width if any(
            ends_abruptly(edges[name][depth_px, start:stop], colour, thresholds)
            for depth_px in range(first_inside, band_width + skip + 1)
        ) else 0
    insets = {name: (w + skip if w else 0) for name, w in found.items()}
    return Border(
        top=found["top"], bottom=found["bottom"], left=found["left"], right=found["right"],
        inset_top=insets["top"], inset_bottom=insets["bottom"], inset_left=insets["left"],
        inset_right=insets["right"],
    )


def _max_depth(side_px: int, thresholds: MeasurementThresholds) -> int:
    return max(1, int(side_px * thresholds.border_max_width_fraction))


def band_run(
    lines: np.ndarray, max_depth: int, thresholds: MeasurementThresholds,
    allow_white: bool = False,
) -> tuple[int, np.ndarray | None]:
    """(depth, colour) of the uniform non-white band starting at line 0; (0, None) if none.

    `lines` is (n_lines, n_samples, 3) uint8 with line 0 on the edge. A run deeper than
    `max_depth` is a backdrop, not a border.
    """
    colour = np.median(lines[0], axis=0).astype(np.int16)
    if not allow_white and bool(np.all(colour >= thresholds.near_white_min_level)):
        return 0, None
    tolerance = thresholds.border_colour_tolerance
    if _uniform_share(lines[:1], colour, tolerance)[0] < thresholds.border_line_uniform_fraction:
        return 0, None
    shares = _uniform_share(lines[: max_depth + 1], colour, tolerance)
    not_uniform = np.flatnonzero(shares < thresholds.border_line_uniform_fraction)
    if not_uniform.size == 0:
        return 0, None  # uniform deeper than a border may be: a backdrop
    depth = int(not_uniform[0])
    # The last lines of a drawn band may already blend into what follows (JPEG, resampling).
    innermost = np.median(lines[max(0, depth - 1 - thresholds.border_transition_lines)], axis=0)
    if np.abs(innermost - colour).max() > thresholds.border_max_drift:
        return 0, None  # a gradient, not a drawn band
    return depth, colour


def ends_abruptly(
    inside_line: np.ndarray, colour: np.ndarray, thresholds: MeasurementThresholds
) -> bool:
    """True when nearly all of `inside_line` (n, 3) differs clearly from the band `colour`."""
    if inside_line.shape[0] == 0:
        return False
    distance = np.abs(inside_line.astype(np.int16) - colour).max(axis=-1)
    differs = np.count_nonzero(distance > thresholds.border_inside_min_difference)
    return differs / inside_line.shape[0] >= thresholds.border_inside_differs_fraction


def _uniform_share(lines: np.ndarray, colour: np.ndarray, tolerance: int) -> np.ndarray:
    """Per line, the share of samples within `tolerance` levels (every channel) of `colour`."""
    distance = np.abs(lines.astype(np.int16) - colour).max(axis=-1)
    return np.asarray((distance <= tolerance).mean(axis=-1))
