"""How many items a picture shows: the judgement behind `composition.multiple_items`.

The preprocess stage separates objects from the background, but an object is not an item: a block
of label artwork or a logo beside the product, the loose end of a cable and a shadow are objects
too, and several views of one product that touch are one object. So the judgement waits for the
extractor's detectors and combines, per image:

1. the separate objects on the background (`ModelInputs.items`), less those that are mostly text
   (artwork, logos, captions: covered by text boxes), badges (one colour around text), fragments
   much smaller than the largest object (cable ends, a tag, a crumb), parts of it cut loose
   inside its box, patches of light or shade, outlines only (the seams of a white garment on
   white, when nothing solid separates), and with the pieces inside one detected thing
   (person or object) counted once; two mirror images of one another are a pair, one unit;
2. everyday objects the COCO detector finds (`DetectedBox(kind="object")`): two or more of them
   that do not overlap are several things even when they touch (two views of one bag, a cup beside
   a kettle); on a busy photo with no separable background they are the only count there is;
3. collages: a straight seam running across the whole frame between two differently pictured
   panels. Product photographs almost never hold one; a collage or grid of photos always does.
   Many such lines side by side are the joints of a surface (floor boards, bricks), not seams.

A multipack photographed as the one unit that is sold is one object on the background and one
COCO box (or several that overlap), so it stays one item. People are not items: a model wearing the
product is the product's presentation, and the people detector and the policy handle people;
but several distinct bodies (models side by side, each in a colour variant) show several units.

One module of about 400 lines on purpose: every rule that adds or removes an item sits beside the
others, since each was tuned against the rest on the dev set (`curator eval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from curator.contracts.vocabulary import AttributeValue
from models.detectors.base import DetectedBox, FrameBox
from models.preprocess import ItemRegion, ModelInputs

# COCO classes that are public street fixtures, which no product photo shows. NanoDet reads
# packshots as them (a stacked mug set as a stop sign at 0.68, a watch band or a boxing glove as a
# parking meter at 0.42-0.49): 19 such boxes on the dev set and 8 on the independent eval set
# from 0.40 up, every one a misreading, so they are never counted as things.
NEVER_PRODUCTS: frozenset[str] = frozenset({
    "traffic light", "fire hydrant", "stop sign", "parking meter",
})

@dataclass(frozen=True)
class ItemSettings:
    """Every threshold of the item judgement, with its unit.

    Fractions are of the frame unless said otherwise; "levels" are 0..255 grey levels.
    """

    # An object whose box is covered by text boxes at least this much is text (artwork, a logo,
    # a caption), not an item.
    text_object_min_cover: float = 0.5
    # An object smaller than this share of the largest object is a fragment (a cable end, a tag).
    fragment_max_relative_area: float = 0.12
    # An object whose box lies inside the largest object's box at least this much is a part of it
    # that the segmentation cut loose (a watch face apart from its strap on a grey backdrop).
    part_max_inside: float = 0.8
    # A cast shadow floating under the product (cut-out packshots re-shadowed on white) is an
    # object on the background too. It is flat (height at most this share of its width) ...
    shadow_max_aspect: float = 0.35
    # ... lies below the middle of the largest object ...
    # ... and is soft: the 95th percentile of its grey gradient (levels per px, on the model
    # copy) stays under this, where a product's outline is a sharp step of 30 levels and more.
    shadow_max_edge_levels: float = 12.0
    # ... and colourless: mean HSV saturation (0..255) in its box under this.
    shadow_max_saturation: float = 40.0
    # A badge (a price circle, a "NEW" sticker) is a separated shape with text inside covering at
    # least this share of its box ...
    badge_min_text_cover: float = 0.15
    # ... painted in one colour: at least this share of its pixels outside the text and off the
    # background lie within `badge_colour_levels` (RGB distance) of their median colour. Products
    # with printed labels are many-coloured (a bottle scored 0.06, badges 0.53-0.99).
    badge_min_uniform_share: float = 0.5
    badge_colour_levels: float = 40.0
    # A pair (shoes, gloves) is sold as one unit: two objects of about the same size (the smaller
    # at least this share of the larger) ...
    pair_min_area_ratio: float = 0.8
    # ... each the mirror image of the other: grey correlation of one with the other flipped at
    # least this (a left and a right shoe scored 0.77-0.82; two colour variants or two views
    # side by side 0.23-0.42) ...
    pair_min_mirror_correlation: float = 0.6
    # ... in the same colours: mean absolute RGB difference to the flipped other at most this
    # (levels; the pairs scored 21-23, colour variants 65-68).
    pair_max_colour_levels: float = 35.0
    # A patch of light or shade on a coloured or dark backdrop (a shadow on the wall, a reflection
    # on the table) separates too, but holds no outline: the grey standard deviation in its box
    # stays under this (levels; such patches 1-6, the least varied item in the dev set 22).
    featureless_max_std: float = 10.0
    # ... measured on its box widened by this share of its size on each side.
    featureless_margin: float = 0.1
    # A separated object whose pixels fill less than this share of its box is an outline (seams,
    # folds, a shadow line), not a solid thing. When every separated object is one, they are the
    # visible edges of a single product the colour of its backdrop (a white hoodie on white:
    # 0.14-0.35), not several items. Every dev-set item on a backdrop filled 0.45 or more.
    outline_max_fill: float = 0.4
    # COCO detections count from this score (0..1) up; the detector's own bar may be lower.
    object_min_score: float = 0.40
    # ... and from this share of the frame up (small detections are parts and reflections).
    object_min_area: float = 0.01
    # Two COCO boxes are one thing when their intersection covers this much of the smaller box.
    object_same_thing_overlap: float = 0.5
    # --- collage seams (on a grey copy whose longest side is `seam_analysis_px`) -----------------
    seam_analysis_px: int = 256
    # A column (row) step is an edge where neighbouring columns differ by more than this.
    seam_edge_levels: float = 14.0
    # A seam is a straight line of edges across at least this share of the frame's height (width)
    # (two panels may match in colour for a stretch) ...
    seam_min_span: float = 0.8
    # ... that reaches both frame edges: edges in at least half the rows within this share of the
    # height (width) from each end. A product's straight side ends where the product ends.
    seam_end_zone: float = 0.08
    # Seams lie inside the frame: at least this far from either edge (a border is not a seam).
    seam_margin: float = 0.12
    # Edges this close (px, on the analysis copy) are one line: both sides of a dark joint.
    seam_line_px: int = 4
    # A plain strip at most this share of the width between two edges is a gutter: one seam.
    seam_gutter_max: float = 0.03
    # A collage row or column holds two or three panels: more straight full-frame lines than this
    # in one direction are the joints of planks, bricks or tiles, a surface (a man's jeans before
    # a brick wall: 3 lines, sneakers on floor boards: 3). A strip of four or more busy photos
    # loses its seams to this; one on a plain backdrop still counts by its separated items.
    seam_max_parallel: int = 2
    # Each side of a seam must be pictured: its grey standard deviation at least this (levels),
    # so an object's straight side against a plain backdrop is not a seam.
    seam_panel_min_std: float = 10.0

    def __post_init__(self) -> None:
        for name in ("text_object_min_cover", "fragment_max_relative_area", "object_min_score",
                     "object_min_area", "object_same_thing_overlap", "badge_min_text_cover",
                     "badge_min_uniform_share", "part_max_inside", "pair_min_area_ratio",
                     "outline_max_fill",
                     "pair_min_mirror_correlation", "seam_min_span", "seam_gutter_max",
                     "seam_end_zone", "seam_margin"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.seam_line_px < 1 or self.seam_max_parallel < 1:
            raise ValueError("seam_line_px and seam_max_parallel must be >= 1, got "
                             f"{self.seam_line_px}, {self.seam_max_parallel}")
        if self.seam_analysis_px < 32:
            raise ValueError(f"seam_analysis_px must be >= 32, got {self.seam_analysis_px}")


def judge_items(
    inputs: ModelInputs, boxes: Sequence[DetectedBox], settings: ItemSettings = ItemSettings()
) -> dict[str, AttributeValue]:
    """`composition.items`, `composition.collage` and `composition.multiple_items` of one image,
    from its model inputs and what the detectors found on it."""
    text = [box.box for box in boxes if box.kind == "text"]
    objects = distinct_objects(
        [box for box in boxes if box.kind == "object"], settings
    )
    bodies = distinct_objects(
        [box for box in boxes if (box.kind, box.label) == ("person", "body")], settings
    )
    separated = items_on_background(inputs.items, text, settings, inputs.rgb)
    # Pieces of one detected thing (a laptop's screen and base, a model's head and arm apart on
    # a white backdrop) are that thing, once.
    separated = one_per_thing(separated, [thing.box for thing in [*bodies, *objects]], settings)
    if len(separated) == 2 and is_mirrored_pair(
            separated[0], separated[1], inputs.rgb, settings):
        separated = separated[:1]  # a pair of shoes or gloves is the one unit sold
    # Several distinct everyday objects beat a single silhouette: views that touch, a prop
    # leaning on the product. Fewer (the detector knows only 80 kinds) leave the silhouettes.
    # One model wears the product; two or more side by side show units or variants.
    count = max(len(separated), len(objects), len(bodies) if len(bodies) > 1 else 0)
    collage = seam_count(inputs.rgb, settings) > 0
    return {
        "composition.items": count,
        "composition.collage": collage,
        "composition.multiple_items": collage or count > 1,
    }


def items_on_background(
    regions: Sequence[ItemRegion], text: Sequence[FrameBox], settings: ItemSettings,
    rgb: np.ndarray | None = None,
) -> list[ItemRegion]:
    """The separated objects that are items: the largest (the product, whatever the text
    detector reads on it: rows of small objects can look like lines of text), and every other
    that is neither mostly text, nor a fragment of the largest, nor (given the frame) the
    shadow it casts."""
    if rgb is not None:
        background = _frame_ring_colour(rgb)
        regions = [region for region in regions
                   if not is_badge(region, text, rgb, background, settings)]
    if not regions:
        return []
    largest, *others = sorted(regions, key=lambda region: -region.area)
    items = [largest] + [
        region for region in others
        if covered_share(region.box, text) < settings.text_object_min_cover
        and region.area >= settings.fragment_max_relative_area * largest.area
        and _overlap_of_smaller(region.box, largest.box) < settings.part_max_inside
        and not (rgb is not None and is_cast_shadow(region, largest, rgb, settings))
        and not (rgb is not None and is_featureless(region, rgb, settings))
    ]
    if all(region.area < settings.outline_max_fill * _area(region.box) for region in items):
        return [largest]  # the seams and folds of one product the backdrop's colour
    return items


def one_per_thing(regions: Sequence[ItemRegion], things: Sequence[FrameBox],
                  settings: ItemSettings) -> list[ItemRegion]:
    """Separated objects inside the box of one detected thing (a person, an everyday object) are
    that thing seen in pieces: they count once."""
    kept: list[ItemRegion] = []
    counted: set[int] = set()
    for region in regions:
        inside = next((index for index, thing in enumerate(things)
                       if _overlap_of_smaller(region.box, thing) >= settings.part_max_inside
                       and _area(thing) >= _area(region.box)), None)
        if inside is None:
            kept.append(region)
        elif inside not in counted:
            counted.add(inside)
            kept.append(region)
    return kept


def is_mirrored_pair(first: ItemRegion, second: ItemRegion, rgb: np.ndarray,
                     settings: ItemSettings) -> bool:
    """Two objects of one size, each the other's mirror image: a left and a right, one pair."""
    if min(first.area, second.area) < settings.pair_min_area_ratio * max(first.area, second.area):
        return False
    size = (64, 64)
    one = cv2.resize(_crop(rgb, first.box), size, interpolation=cv2.INTER_AREA).astype(np.float32)
    other = cv2.resize(_crop(rgb, second.box), size,
                       interpolation=cv2.INTER_AREA)[:, ::-1].astype(np.float32)
    if np.abs(one - other).mean() > settings.pair_max_colour_levels:
        return False
    grey_one, grey_other = one.mean(axis=2), other.mean(axis=2)
    grey_one -= grey_one.mean()
    grey_other -= grey_other.mean()
    norm = float(np.sqrt((grey_one**2).sum() * (grey_other**2).sum()))
    correlation = float((grey_one * grey_other).sum()) / norm if norm > 0 else 0.0
    return correlation >= settings.pair_min_mirror_correlation


def is_badge(region: ItemRegion, text: Sequence[FrameBox], rgb: np.ndarray,
             background: np.ndarray, settings: ItemSettings) -> bool:
    """A shape of one colour carrying text (a price circle, a sticker): graphics, not an item.
    It may be the largest shape on a promo template, so it is judged before the product is."""
    if covered_share(region.box, text) < settings.badge_min_text_cover:
        return False
    crop = _crop(rgb, region.box).astype(np.float32)
    outside_text = np.ones(crop.shape[:2], dtype=bool)
    x0, y0 = region.box[:2]
    height, width = rgb.shape[:2]
    for tx0, ty0, tx1, ty1 in text:
        rows = slice(max(0, int((ty0 - y0) * height)), max(0, int(np.ceil((ty1 - y0) * height))))
        columns = slice(max(0, int((tx0 - x0) * width)), max(0, int(np.ceil((tx1 - x0) * width))))
        outside_text[rows, columns] = False
    pixels = crop[outside_text]
    pixels = pixels[np.linalg.norm(pixels - background, axis=1) > settings.badge_colour_levels]
    if len(pixels) < 16:
        return False
    median = np.median(pixels, axis=0)
    uniform = (np.linalg.norm(pixels - median, axis=1) <= settings.badge_colour_levels).mean()
    return bool(uniform >= settings.badge_min_uniform_share)


def _frame_ring_colour(rgb: np.ndarray, ring_px: int = 4) -> np.ndarray:
    """Median colour of the frame's outer ring: the backdrop's colour where there is one."""
    ring = np.concatenate([rgb[:ring_px].reshape(-1, 3), rgb[-ring_px:].reshape(-1, 3),
                           rgb[:, :ring_px].reshape(-1, 3), rgb[:, -ring_px:].reshape(-1, 3)])
    return np.median(ring, axis=0).astype(np.float32)


def _crop(rgb: np.ndarray, box: FrameBox) -> np.ndarray:
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = box
    return rgb[int(y0 * height):max(int(y0 * height) + 1, round(y1 * height)),
               int(x0 * width):max(int(x0 * width) + 1, round(x1 * width))]


def is_featureless(region: ItemRegion, rgb: np.ndarray, settings: ItemSettings) -> bool:
    """A patch without an outline or any detail inside: light or shade, not a thing. Its box is
    widened a little so that a plain, solid thing still shows its step against the backdrop."""
    x0, y0, x1, y1 = region.box
    pad_x, pad_y = (x1 - x0) * settings.featureless_margin, (y1 - y0) * settings.featureless_margin
    widened = (max(0.0, x0 - pad_x), max(0.0, y0 - pad_y), min(1.0, x1 + pad_x),
               min(1.0, y1 + pad_y))
    grey = cv2.cvtColor(_crop(rgb, widened), cv2.COLOR_RGB2GRAY)
    return bool(grey.std() < settings.featureless_max_std)


def is_cast_shadow(region: ItemRegion, largest: ItemRegion, rgb: np.ndarray,
                   settings: ItemSettings) -> bool:
    """A flat, soft, colourless object below the middle of the product: its shadow."""
    x0, y0, x1, y1 = region.box
    if (y1 - y0) * rgb.shape[0] > settings.shadow_max_aspect * (x1 - x0) * rgb.shape[1]:
        return False
    if y0 < (largest.box[1] + largest.box[3]) / 2:
        return False
    height, width = rgb.shape[:2]
    crop = rgb[int(y0 * height):max(int(y0 * height) + 1, round(y1 * height)),
               int(x0 * width):max(int(x0 * width) + 1, round(x1 * width))]
    if crop.shape[0] < 3 or crop.shape[1] < 3:
        return False
    saturation = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)[..., 1].mean()
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gradient = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3),
                        cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)) / 8  # levels per px
    return bool(saturation < settings.shadow_max_saturation
                and np.percentile(gradient, 95) < settings.shadow_max_edge_levels)


def distinct_objects(objects: Sequence[DetectedBox], settings: ItemSettings) -> list[DetectedBox]:
    """COCO detections that are things of their own: confident, not tiny, not a class no product
    photo shows, and not mostly inside a stronger detection (one object read twice, or a part
    of it)."""
    candidates = sorted(
        (box for box in objects
         if box.score >= settings.object_min_score and _area(box.box) >= settings.object_min_area
         and box.label not in NEVER_PRODUCTS),
        key=lambda box: -box.score,
    )
    kept: list[DetectedBox] = []
    for box in candidates:
        if all(_overlap_of_smaller(box.box, other.box) < settings.object_same_thing_overlap
               for other in kept):
            kept.append(box)
    return kept


def covered_share(box: FrameBox, covers: Sequence[FrameBox]) -> float:
    """Share of `box` covered by the union of `covers` (all 0..1 frame units), on a small grid."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0 or not covers:
        return 0.0
    grid = 64
    mask = np.zeros((grid, grid), dtype=bool)
    for cx0, cy0, cx1, cy1 in covers:
        c0 = int(np.clip(np.floor((cx0 - x0) / (x1 - x0) * grid), 0, grid))
        c1 = int(np.clip(np.ceil((cx1 - x0) / (x1 - x0) * grid), 0, grid))
        r0 = int(np.clip(np.floor((cy0 - y0) / (y1 - y0) * grid), 0, grid))
        r1 = int(np.clip(np.ceil((cy1 - y0) / (y1 - y0) * grid), 0, grid))
        mask[r0:r1, c0:c1] = True
    return float(mask.mean())


def seam_count(rgb: np.ndarray, settings: ItemSettings) -> int:
    """Straight seams across the whole frame between two pictured panels (vertical + horizontal)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = settings.seam_analysis_px / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32)
    return _vertical_seams(grey, settings) + _vertical_seams(grey.T, settings)


def _vertical_seams(grey: np.ndarray, settings: ItemSettings) -> int:
    height, width = grey.shape
    if width < 8 or height < 8:
        return 0
    # A step between columns x-1 and x+1, so a seam softened over two pixels by resizing or JPEG
    # still reads as one edge per row.
    step = np.abs(grey[:, 2:] - grey[:, :-2]) > settings.seam_edge_levels
    span = step.mean(axis=0)  # per column x = 1 .. width-2
    zone = max(1, round(settings.seam_end_zone * height))
    reaches_ends = (step[:zone].mean(axis=0) >= 0.5) & (step[-zone:].mean(axis=0) >= 0.5)
    straight = np.flatnonzero((span >= settings.seam_min_span) & reaches_ends) + 1
    margin = max(2, round(settings.seam_margin * width))
    inside = straight[(straight >= margin) & (straight <= width - margin)]
    if len(_parallel_lines(grey, inside, settings)) > settings.seam_max_parallel:
        return 0  # the joints of planks, bricks or tiles: a surface, not panels
    seams = 0
    last = -width
    for column in straight:
        if column < margin or column > width - margin or column - last <= 2:
            last = column if column - last <= 2 else last
            continue
        left, right = grey[:, : column - 1], grey[:, column + 2 :]
        if min(left.std(), right.std()) >= settings.seam_panel_min_std:
            seams += 1
        last = column
    return seams


def _parallel_lines(grey: np.ndarray, columns: np.ndarray, settings: ItemSettings
                    ) -> list[tuple[int, int]]:
    """The straight full-height edges at `columns` as separate lines (first, last column): edges
    a few pixels apart are one line (both sides of a dark joint), and so are the two sides of a
    narrow plain strip (the gutter between two panels)."""
    width = grey.shape[1]
    lines: list[tuple[int, int]] = []
    for column in (int(value) for value in columns):
        gap = column - lines[-1][1] if lines else width
        if gap <= settings.seam_line_px or (
                gap <= settings.seam_gutter_max * width
                and grey[:, lines[-1][1] + 2 : column - 1].std() < settings.seam_panel_min_std):
            lines[-1] = (lines[-1][0], column)
        else:
            lines.append((column, column))
    return lines


def _area(box: FrameBox) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def _overlap_of_smaller(a: FrameBox, b: FrameBox) -> float:
    inter = (max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
             * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0))
    smaller = min(_area(a), _area(b))
    return inter / smaller if smaller > 0 else 0.0
