"""Overlay or on-product: what each text box lies on.

Added graphics (a "BEST SELLER" badge, "50% OFF", a watermark, a caption) sit on the background or
on a shape of their own; print on the product is surrounded by product. Per box, in this order:

0. faint — the model's score is under `overlay_min_score` -> on_product (added text is crisp;
   faint answers are stitching, comb teeth, connector holes);
1. background — at least `overlay_min_background_share` of the band along the box (strips above
   and below the line) is background, by the preprocess stage's own split (the edge-connected
   region of the background colour), and each strip has some (text along the product's edge
   has background on one side only) -> overlay;
2. banner — the band lies on a separate shape along a frame edge, spanning it -> overlay;
3. badge — the band lies on a separate shape much smaller than the largest object (banners
   aside) and mostly covered by text -> overlay;
4. outside product — most of the box lies outside the product box of the preprocess stage
   -> overlay;
5. headline — a long, tall line near the top or bottom edge (a poster's title) -> overlay;
6. panel — the text lies on a flat patch of one colour that ends close around it, is mostly
   text and touches the background (a price tag overlapping a packshot's edge) -> overlay;
7. otherwise -> on_product.

A busy photo has no separable background: there only rules 4 and 5 can call text overlay, so a
small caption or callout card laid over a lifestyle scene is usually taken for print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from models.detectors.db_postprocess import RotatedRect, grow_across
from models.detectors.text_settings import TextDetectorSettings
from models.measurements.background import Segmentation, segment
from models.measurements.scaling import shrink_by_whole_factor

Label = Literal["overlay", "on_product"]
Reason = Literal["background", "banner", "badge", "outside_product", "headline", "panel",
                 "surrounded_by_product", "faint"]
FloatBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Placement:
    label: Label
    reason: Reason
    background_share: float  # of the band along the box; 0 when no background separates


@dataclass(frozen=True)
class Surroundings:
    """What text in one frame may lie on, at analysis resolution."""

    rgb: np.ndarray  # the frame at analysis resolution (border painted over), H x W x 3 uint8
    segmentation: Segmentation
    components: np.ndarray  # int32 label per analysis px; 0 = background (or none)
    areas: np.ndarray  # analysis px per component label
    boxes: np.ndarray  # (labels, 4) int x0, y0, x1, y1 (end exclusive) per component
    banners: frozenset[int]  # labels of components that are bands along a frame edge
    main: int  # label of the largest component that is not a banner; 0 when there is none
    scale: tuple[float, float]  # analysis px per frame px, (x, y)


def surroundings(
    rgb: np.ndarray, settings: TextDetectorSettings, content_box: FloatBox = (0.0, 0.0, 1.0, 1.0)
) -> Surroundings:
    """Background and objects of an H x W x 3 uint8 frame (the model input) whose content lies in
    `content_box` (0..1 frame units: inside a border, when the preprocess stage found one)."""
    thresholds = settings.segmentation
    analysis = shrink_by_whole_factor(without_border(rgb, content_box),
                                      thresholds.analysis_max_side_px)
    split = segment(analysis, thresholds)
    product = split.product if split.separable else np.zeros_like(split.product)
    _, components, stats, _ = cv2.connectedComponentsWithStats(product, connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    boxes = np.stack(
        [
            stats[:, cv2.CC_STAT_LEFT],
            stats[:, cv2.CC_STAT_TOP],
            stats[:, cv2.CC_STAT_LEFT] + stats[:, cv2.CC_STAT_WIDTH],
            stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT],
        ],
        axis=1,
    )
    banners = _banners(boxes, components.shape, settings)
    candidates = areas.copy()
    candidates[list(banners)] = 0
    main = int(candidates.argmax()) if candidates.max() > 0 else 0
    scale = (analysis.shape[1] / rgb.shape[1], analysis.shape[0] / rgb.shape[0])
    return Surroundings(analysis, split, components, areas, boxes, banners, main, scale)


def without_border(rgb: np.ndarray, content_box: FloatBox) -> np.ndarray:
    """`rgb`, or a copy whose border (outside `content_box`) is painted in the colour along the
    content's own edge: the backdrop the text lies on is the content's, not the frame's (white
    text on a black backdrop inside a white frame is on the background, not on a "product")."""
    height, width = rgb.shape[:2]
    x0, y0 = round(content_box[0] * width), round(content_box[1] * height)
    x1, y1 = round(content_box[2] * width), round(content_box[3] * height)
    if (x0, y0, x1, y1) == (0, 0, width, height) or x1 - x0 < 2 or y1 - y0 < 2:
        return rgb
    inner = rgb[y0:y1, x0:x1]
    edge = np.concatenate((inner[0], inner[-1], inner[:, 0], inner[:, -1]))
    painted = np.empty_like(rgb)
    painted[:] = np.median(edge, axis=0).astype(np.uint8)
    painted[y0:y1, x0:x1] = inner
    return painted


def _banners(
    boxes: np.ndarray, shape: tuple[int, int], settings: TextDetectorSettings
) -> frozenset[int]:
    """Components whose box runs along a whole frame edge and is thin across it."""
    height, width = shape
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    across = ((x1 - x0) >= settings.banner_min_span * width) & (
        (y1 - y0) <= settings.banner_max_thickness * height) & ((y0 == 0) | (y1 == height))
    down = ((y1 - y0) >= settings.banner_min_span * height) & (
        (x1 - x0) <= settings.banner_max_thickness * width) & ((x0 == 0) | (x1 == width))
    found = np.flatnonzero(across | down)
    return frozenset(int(label) for label in found if label != 0)


def _to_analysis(rect: RotatedRect, scale: tuple[float, float]) -> np.ndarray:
    """Corner points (4 x 2 float32) of a frame-px rectangle, in analysis px."""
    return cv2.boxPoints(rect) * np.asarray(scale, dtype=np.float32)


def _band(
    rect: RotatedRect, around: Surroundings, settings: TextDetectorSettings
) -> tuple[tuple[slice, slice], np.ndarray]:
    """(region of interest, mask within it) of the band above and below a frame-px text
    rectangle: two strips along its long sides, numbered 1 and 2 (0: neither). Not its ends:
    print often runs the whole width of a narrow product (a bottle), so what lies beyond the
    ends of a line says little."""
    px = 1.0 / min(around.scale)  # frame px per analysis px
    height, width = around.components.shape
    widest = settings.band_max_fraction * max(height, width) * px
    text_height = min(rect[1])
    outer = min(settings.band_outer * text_height, widest)
    inner = min(settings.band_inner * text_height, outer / 2)
    outer = max(outer, inner + settings.band_min_px * px)
    aspect = settings.min_line_aspect
    outer_corners = _to_analysis(grow_across(rect, outer, aspect), around.scale)
    inner_corners = _to_analysis(grow_across(rect, inner, aspect), around.scale)
    x0 = int(np.clip(np.floor(outer_corners[:, 0].min()), 0, width))
    x1 = int(np.clip(np.ceil(outer_corners[:, 0].max()) + 1, 0, width))
    y0 = int(np.clip(np.floor(outer_corners[:, 1].min()), 0, height))
    y1 = int(np.clip(np.ceil(outer_corners[:, 1].max()) + 1, 0, height))
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    offset = np.asarray([x0, y0], dtype=np.float32)
    cv2.fillPoly(mask, [np.rint(outer_corners - offset).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.rint(inner_corners - offset).astype(np.int32)], 0)
    # Number the strips 1 and 2 by the side of the line's long axis they lie on.
    (cx, cy), _, angle = rect
    radians = np.deg2rad(angle)
    along_width = np.asarray([np.cos(radians), np.sin(radians)])
    across = along_width if grow_across(rect, 1.0, aspect)[1][0] > rect[1][0] else np.asarray(
        [-along_width[1], along_width[0]])
    ys, xs = np.mgrid[y0:y1, x0:x1]
    side = ((xs + 0.5 - cx * around.scale[0]) * across[0]
            + (ys + 0.5 - cy * around.scale[1]) * across[1])
    mask[(mask > 0) & (side > 0)] = 2
    return (slice(y0, y1), slice(x0, x1)), mask


def _outside_fraction(box: FloatBox, product_box: FloatBox) -> float:
    """Share of `box` (0..1 frame units) outside `product_box`."""
    x0, y0, x1, y1 = box
    px0, py0, px1, py1 = product_box
    area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    if area <= 0:
        return 0.0
    inside = max(min(x1, px1) - max(x0, px0), 0.0) * max(min(y1, py1) - max(y0, py0), 0.0)
    return 1.0 - inside / area


def place(
    rects: Sequence[RotatedRect],
    boxes: Sequence[FloatBox],
    product_box: FloatBox,
    around: Surroundings,
    settings: TextDetectorSettings,
    scores: Sequence[float] | None = None,
) -> list[Placement]:
    """The placement of each text rectangle (frame px) with its box (0..1 frame units) and the
    model's score for it (1 for each when not given)."""
    shares: list[float] = []
    lesser_sides: list[float] = []  # the background share of the strip with less of it
    carriers: list[int] = []  # the component each box's band mostly lies on (0: none)
    for rect in rects:
        roi, band = _band(rect, around, settings)
        selected = band.astype(bool)
        count = int(np.count_nonzero(selected))
        if count == 0:
            shares.append(0.0)
            lesser_sides.append(0.0)
            carriers.append(0)
            continue
        background = around.segmentation.background[roi]
        shares.append(float(np.count_nonzero(background[selected])) / count)
        strips = [band == side for side in (1, 2)]
        lesser_sides.append(min(
            (float(np.count_nonzero(background[strip])) / int(np.count_nonzero(strip))
             for strip in strips if strip.any()), default=0.0))
        labels = around.components[roi][selected]
        labels = labels[labels > 0]
        carriers.append(int(np.bincount(labels).argmax()) if labels.size else 0)

    badges = _badges(rects, carriers, around, settings)
    placements: list[Placement] = []
    frame_height = around.components.shape[0] / around.scale[1]
    frame_width = around.components.shape[1] / around.scale[0]
    for index, (share, lesser, carrier, box) in enumerate(
            zip(shares, lesser_sides, carriers, boxes, strict=True)):
        reason: Reason = "surrounded_by_product"
        if scores is not None and scores[index] < settings.overlay_min_score:
            reason = "faint"
        elif (around.segmentation.separable and share >= settings.overlay_min_background_share
                and lesser >= settings.overlay_min_side_background_share):
            reason = "background"
        elif carrier in around.banners:
            reason = "banner"
        elif carrier in badges:
            reason = "badge"
        elif _outside_fraction(box, product_box) >= settings.overlay_min_outside_product:
            reason = "outside_product"
        elif _headline(rects[index], frame_height, frame_width, settings):
            reason = "headline"
        elif _on_panel(index, rects, around, settings):
            reason = "panel"
        label: Label = "on_product" if reason in ("surrounded_by_product", "faint") else "overlay"
        placements.append(Placement(label, reason, share))
    return placements


def _headline(
    rect: RotatedRect, frame_height: float, frame_width: float, settings: TextDetectorSettings
) -> bool:
    """A long, tall line near the top or bottom edge: a poster's or banner's title."""
    (_, cy), (width, height), _ = rect
    edge = min(cy, frame_height - cy)
    return (max(width, height) >= settings.headline_min_length * min(frame_width, frame_height)
            and min(width, height) >= settings.headline_min_height * frame_height
            and edge <= settings.headline_edge_zone * frame_height)


def _badges(
    rects: Sequence[RotatedRect],
    carriers: Sequence[int],
    around: Surroundings,
    settings: TextDetectorSettings,
) -> set[int]:
    """Components that are badges: small next to the largest object, mostly text."""
    main_area = around.areas[around.main] if around.main else 0
    badges: set[int] = set()
    for component in set(carriers) - {0, around.main} - around.banners:
        if around.areas[component] > settings.badge_max_relative_area * main_area:
            continue
        x0, y0, x1, y1 = (int(v) for v in around.boxes[component])
        text = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        offset = np.asarray([x0, y0], dtype=np.float32)
        for rect, carrier in zip(rects, carriers, strict=True):
            if carrier == component:
                corners = _to_analysis(rect, around.scale) - offset
                cv2.fillPoly(text, [np.rint(corners).astype(np.int32)], 1)
        if np.count_nonzero(text) >= settings.badge_min_text_cover * text.size:
            badges.add(component)
    return badges


def _on_panel(
    index: int, rects: Sequence[RotatedRect], around: Surroundings, settings: TextDetectorSettings
) -> bool:
    """Whether text rectangle `index` (frame px) lies on a panel of its own: a flat patch of one
    colour (a price tag, a callout card, a shop-name plate) that ends within
    `panel_max_margin` text heights of the text and that text covers for the most part.

    Print has the product's surface around it, which runs on well past the text (a shirt, a
    bag, a label); a panel is a graphic added for the text. The patch's colour is the commonest
    colour inside the text's rectangle, the backdrop between its glyphs."""
    rect = rects[index]
    analysis = around.rgb
    height, width = analysis.shape[:2]
    corners = _to_analysis(rect, around.scale)
    text_height = min(rect[1]) * min(around.scale)
    margin = settings.panel_max_margin * text_height
    x0 = int(np.clip(np.floor(corners[:, 0].min() - margin), 0, width))
    x1 = int(np.clip(np.ceil(corners[:, 0].max() + margin) + 1, 0, width))
    y0 = int(np.clip(np.floor(corners[:, 1].min() - margin), 0, height))
    y1 = int(np.clip(np.ceil(corners[:, 1].max() + margin) + 1, 0, height))
    window = analysis[y0:y1, x0:x1].astype(np.int16)
    offset = np.asarray([x0, y0], dtype=np.float32)
    text = np.zeros(window.shape[:2], dtype=np.uint8)
    cv2.fillPoly(text, [np.rint(corners - offset).astype(np.int32)], 1)
    inside = window[text > 0]
    if inside.size == 0:
        return False
    # The commonest colour, on a coarse grid (JPEG noise and antialiasing spread it).
    bins = (inside // 32).astype(np.int32)
    codes = bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2]
    colour = np.median(inside[codes == np.bincount(codes).argmax()], axis=0)
    similar = (np.abs(window - colour).max(axis=2) <= settings.panel_colour_tolerance)
    panel = (similar | (text > 0)).astype(np.uint8)
    _, labels = cv2.connectedComponents(panel, connectivity=4)
    own = labels == labels[text > 0][0] if labels[text > 0].size else np.zeros_like(similar)
    if own[0].any() or own[-1].any() or own[:, 0].any() or own[:, -1].any():
        return False  # the colour runs on past the window: a surface, not a panel
    beyond_text = int(np.count_nonzero(own & similar & (text == 0)))
    if beyond_text < settings.panel_min_margin_share * np.count_nonzero(text):
        return False  # nothing of that colour around the text: the glyphs' own colour
    # An added panel lies on the backdrop, at least in part: beside a packshot, or overlapping
    # its edge. A patch with product all round it is part of the product (a logo, a label).
    # The rim is read a few px out, past the thin outline a sticker or price tag often has.
    kernel = np.ones((3, 3), np.uint8)
    outline = cv2.dilate(own.astype(np.uint8), kernel, iterations=settings.panel_outline_px) > 0
    rim = (cv2.dilate(own.astype(np.uint8), kernel,
                      iterations=settings.panel_outline_px + 2) > 0) & ~outline
    backdrop = around.segmentation.background[y0:y1, x0:x1][rim]
    if np.count_nonzero(backdrop) < settings.panel_min_background_share * max(backdrop.size, 1):
        return False
    covered = np.zeros_like(text)
    for other in rects:
        other_corners = _to_analysis(other, around.scale) - offset
        cv2.fillPoly(covered, [np.rint(other_corners).astype(np.int32)], 1)
    cover = np.count_nonzero(covered[own]) / np.count_nonzero(own)
    return bool(cover >= settings.panel_min_text_cover)
