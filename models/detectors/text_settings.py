"""Every threshold of the text detector, in one place, each with its unit.

"canvas px" are pixels of the fixed square the model sees (each image letterboxed into it);
"analysis px" are pixels of the small copy the background/product split is computed on;
probabilities are the model's 0..1 text probability; fractions and shares are 0..1.

The DB post-processing defaults are rapidocr 3.10.0's for this model (thresh 0.3, box_thresh 0.5,
unclip_ratio 1.6, max_candidates 1000, dilation on, "fast" box score, min size 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.measurements.thresholds import MeasurementThresholds


@dataclass(frozen=True)
class TextDetectorSettings:
    # --- model input -----------------------------------------------------------------------------
    # Longest side of the canvas every image is letterboxed into (canvas px, a multiple of 32:
    # the network downsamples 32x); every image's longest side is drawn this long, whatever its
    # size, so the thresholds below hold for all. Model inputs arrive with a longest side of at
    # most 640 px, so 640 keeps them at full detail.
    canvas_px: int = 640
    # The canvas's other side: the image's own, rounded up to 32, rather than canvas_px. A
    # non-square photo then costs the network only its own area, not a square's padding.
    fit_canvas: bool = True

    # --- DB post-processing (canvas px / probabilities) ------------------------------------------
    # A pixel is text when its probability exceeds this.
    binary_threshold: float = 0.3
    # A region is kept when the mean probability inside its rectangle is at least this.
    box_threshold: float = 0.5
    # The network predicts a text kernel shrunk by DB's ratio; the rectangle is grown back by
    # area * unclip_ratio / perimeter on every side, which restores the glyphs' extent.
    unclip_ratio: float = 1.6
    # ... but by at most this fraction of the canvas side (0.04: 26 px at 640). Unclipping assumes
    # one line of text; lines printed close together (dense packaging print) merge into one block
    # that would grow by a third of its size, far past the print. A single line needs at most
    # about 0.4 x its height; 26 px is the margin of a line 60 px tall (a tenth of the frame).
    unclip_max_fraction: float = 0.04
    # Regions looked at per image, at most (guards post-processing time on noisy maps).
    max_candidates: int = 1000
    # Grow the binary map by a 2x2 square first: joins glyph kernels split by one pixel.
    dilate: bool = True
    # Regions whose shorter side is under this (canvas px) are noise; after unclipping the
    # shorter side must reach this plus 2.
    min_side_px: float = 3.0

    # --- text or object (`text_filter`; fractions of the canvas side, edges per pixel) ---------
    # The model also lights up whole objects (a bag, a ring, a face). A region whose shorter
    # side (after unclipping) exceeds `max_line_height` is not a line of text (115 px at 640;
    # object blobs on the eval photos were 120-500 px). One taller than `stroke_check_height`
    # (51 px) must show strokes: a Canny edge density of at least `min_edge_density`. A line of
    # text crosses ~4-6 stroke edges per column, so ~5 / height: ~0.1 at 50 px, 0.062 for a bold
    # line 70 px tall; objects of those sizes on the eval photos 0.01-0.06. Single lines taller
    # than ~75 px (a bold "SALE" at 13 % of the frame height) are lost: posters, rarely photos.
    max_line_height: float = 0.18
    stroke_check_height: float = 0.08
    min_edge_density: float = 0.06

    # --- overlay vs on-product -------------------------------------------------------------------
    # The band whose pixels say what a text box lies on: strips along the line's long sides
    # (above and below it), from `band_inner` to `band_outer` times the box's shorter side (its
    # text height) away from it, at least `band_min_px` analysis px wide so even small text has
    # surroundings. A box less than `min_line_aspect` times longer than high has no clear
    # direction and is taken as horizontal text.
    min_line_aspect: float = 1.5
    band_inner: float = 0.15
    band_outer: float = 0.8
    band_min_px: int = 2
    # ... and at most this fraction of the frame's longest side from the box: beyond that the
    # band would measure the neighbourhood rather than what the text lies on.
    band_max_fraction: float = 0.04
    # Text is on the background (overlay) when at least this share of its band is background.
    overlay_min_background_share: float = 0.5
    # ... and each strip at least this share: text along the product's edge (teeth of a comb, a
    # number on a watch bezel) has background on one side only; a caption has it on both.
    overlay_min_side_background_share: float = 0.4
    # A banner: a separate shape along a frame edge, spanning at least `banner_min_span` of that
    # edge and at most `banner_max_thickness` of the frame across it (fractions of the frame).
    banner_min_span: float = 0.9
    banner_max_thickness: float = 0.25
    # A badge: a separate shape no bigger than `badge_max_relative_area` of the largest object
    # that is not a banner, with text boxes covering at least `badge_min_text_cover` of its
    # bounding box. A product label covers a small part of its product; a badge is mostly text.
    badge_max_relative_area: float = 0.5
    badge_min_text_cover: float = 0.25
    # A panel: a flat patch of one colour around the text (within `panel_colour_tolerance`
    # grey levels on every channel of the commonest colour inside the text's rectangle) that
    # ends within `panel_max_margin` text heights of it, reaches past the rectangle by at least
    # `panel_min_margin_share` of its area, and is covered by text boxes for at least
    # `panel_min_text_cover` of its area.
    panel_colour_tolerance: int = 24
    panel_max_margin: float = 2.0
    panel_min_margin_share: float = 0.15
    panel_min_text_cover: float = 0.4
    # ... and at least half the ring of pixels around it (read past its outline) is background:
    # an added tag lies mostly on the backdrop even where it straddles the product's edge, while
    # a display or label on a product whose colour is near the backdrop's leaves a third or less.
    panel_min_background_share: float = 0.5
    # Analysis px of the panel's own outline skipped before its rim is read (a price tag's
    # black stroke would otherwise hide the backdrop it lies on).
    panel_outline_px: int = 3
    # A headline on a busy picture: a line at least `headline_min_length` of the frame's shorter
    # side long and `headline_min_height` of its height tall, centred within `headline_edge_zone`
    # of the top or bottom edge (poster and banner titles; print is rarely that big that far out).
    # The shorter side, so that the title of a wide web banner, set beside its picture, counts.
    headline_min_length: float = 0.5
    headline_min_height: float = 0.08
    headline_edge_zone: float = 0.3
    # Text is overlay only when the model is at least this sure of it: added text is rendered
    # crisp; the model's faint answers on stitching, teeth and connector holes are textures.
    # Added text scored 0.66-0.91 on the dev set and 0.68-0.88 on the independent eval set; a
    # watch crown's ridges and a line of small print on a shirt read as overlay at 0.63-0.64.
    overlay_min_score: float = 0.65
    # Text is overlay when at least this fraction of its box lies outside the product box the
    # preprocess stage found (a caption beside the product on a busy photo).
    overlay_min_outside_product: float = 0.6
    # The background/product split reuses the preprocess stage's method and thresholds, on a copy
    # of the model input shrunk by a whole factor to at most `analysis_max_side_px`.
    segmentation: MeasurementThresholds = field(default_factory=MeasurementThresholds)

    def __post_init__(self) -> None:
        if self.canvas_px <= 0 or self.canvas_px % 32:
            raise ValueError(f"canvas_px must be a positive multiple of 32, got {self.canvas_px}")
        for name in ("binary_threshold", "box_threshold", "unclip_max_fraction",
                     "max_line_height", "stroke_check_height", "min_edge_density",
                     "band_max_fraction", "overlay_min_background_share",
                     "overlay_min_side_background_share",
                     "banner_min_span", "banner_max_thickness",
                     "badge_max_relative_area", "badge_min_text_cover",
                     "overlay_min_outside_product"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.panel_outline_px < 0:
            raise ValueError(f"panel_outline_px must be >= 0, got {self.panel_outline_px}")
        if not 0.0 <= self.band_inner < self.band_outer:
            raise ValueError("band_inner must be >= 0 and below band_outer")
