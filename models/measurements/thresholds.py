"""Every threshold of the technical measurements, in one place, each with its unit.

Levels are 8-bit grey/channel levels (0..255); "analysis px" are pixels of the downscaled copy the
masks are computed on (longest side `analysis_max_side_px`); fractions are 0..1.

The descriptions in `models/vocabulary.py` quote the defaults (near-white 245, is_white 0.95,
clipped luma 5 / 250, sharpness at 512 px with half point 100); keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MeasurementThresholds:
    # --- working copies ---------------------------------------------------------------------------
    # Upper bound on the longest side of the copy that background, composition, exposure and
    # colour are measured on. The copy is shrunk by a whole factor (fast), so its longest side
    # lies between half this and this; thresholds in analysis px are set for that range.
    analysis_max_side_px: int = 512
    # Longest side of the copy handed to the neural detectors (they letterbox it themselves).
    model_input_max_side_px: int = 640

    # --- white ------------------------------------------------------------------------------------
    # A pixel is near-white when every channel is at least this level.
    near_white_min_level: int = 245
    # background.is_white: share of background pixels that are near-white, at least this fraction.
    white_background_min_fraction: float = 0.95
    # A close-up that fills the frame (a garment cut by it on every side) shows its backdrop only
    # in slivers, so the outer ring is mostly product and the share above fails. A studio's white
    # is blown out to exactly 255: the backdrop still reads as white when at least
    # `close_up_min_pure_white` of the ring is pure white and at least `close_up_min_pure_share`
    # of its near-white pixels are. Magento close-ups on white scored 0.93-0.99; white walls and
    # tables in lifestyle scenes, never clipped that evenly, 0.46-0.90.
    close_up_min_pure_white: float = 0.1
    close_up_min_pure_share: float = 0.92
    # A softly shaded light backdrop (a white sweep lit from one side, a faint table edge) is
    # white to a person although much of it lies under `near_white_min_level`. It is judged as one
    # backdrop: one colour must surround the product along most of the frame's edge (at least
    # `white_backdrop_min_ring_share` of the outer ring within `background_colour_tolerance` of
    # it; a sky or a lit wall above a floor in a scene does not),
    # be neutral (median channel spread at most `white_backdrop_max_spread` levels) and at least
    # half of it must be at least `white_backdrop_min_median_level` (the ~240 line the labels draw
    # between near-white and light grey). Its pixels then count as near-white down to
    # `white_backdrop_shading_floor` levels (every channel), with the same spread limit.
    white_backdrop_min_ring_share: float = 0.6
    white_backdrop_min_median_level: int = 240
    white_backdrop_max_spread: int = 10
    white_backdrop_shading_floor: int = 220
    # background.transparent: share of the frame the file leaves transparent, at least this.
    # 1% ignores anti-aliased corners and a stray clear pixel; a cut-out product leaves far more.
    transparent_min_fraction: float = 0.01

    # --- background / product mask ----------------------------------------------------------------
    # Width of the outer ring the background colour is estimated from, as a fraction of the
    # shorter side (at least 2 analysis px).
    background_ring_fraction: float = 0.02
    # A pixel belongs to the background colour when no channel differs from it by more than this
    # many levels. Wide enough for JPEG noise and paper grain; narrow enough that the darker
    # outline of a white product stays product.
    background_colour_tolerance: int = 14
    # Gaps in a product's outline narrower than this (analysis px) are closed before the
    # background is flood-connected to the edges, so a white product does not leak into it.
    outline_gap_closing_px: int = 5
    # The ring's dominant colour must cover at least this share of the ring, and the connected
    # background at least `min_background_fraction` of the frame; otherwise the image is a busy
    # photo with no separable background and the whole frame counts as product.
    background_ring_min_share: float = 0.4
    min_background_fraction: float = 0.05
    # Below this share of the ring within tolerance of one colour, a smooth colour surface (a
    # studio sweep, a vignette) is tried as the background instead.
    background_uniform_ring_share: float = 0.9
    # The surface replaces the single colour only when it explains at least this much more of
    # the ring (fraction of ring pixels within tolerance).
    background_surface_min_gain: float = 0.1
    # A soft cast shadow (background.soft_shadow) is the backdrop darkened to no less than this
    # ratio of its level, every channel by about the same factor (at most this far apart), with
    # no grey step steeper than `shadow_max_edge_levels` levels per px nearby (gaps in such
    # steps up to `shadow_edge_closing_px` closed). On the dev set the touching decisions these
    # change held for steepness 3-6 and tint 0.03-0.08.
    shadow_min_level_ratio: float = 0.35
    shadow_max_tint: float = 0.05
    shadow_max_edge_levels: float = 4.0
    shadow_edge_closing_px: int = 7
    # Product components smaller than this fraction of the frame are specks (noise, dust): dropped.
    speck_max_area_fraction: float = 0.0005
    # A product component counts as an item from this fraction of the frame upwards.
    item_min_area_fraction: float = 0.01

    # --- frame.border -----------------------------------------------------------------------------
    # A border band is at most this fraction of the side it is measured across (1 px minimum).
    border_max_width_fraction: float = 0.08
    # A line belongs to the band when at least this share of its pixels is within
    # `border_colour_tolerance` levels (any channel) of the band colour.
    border_line_uniform_fraction: float = 0.97
    border_colour_tolerance: int = 24
    # Lines between the band and the content that may be blends of both (JPEG, anti-aliasing);
    # they are skipped, and cropped away with the border.
    border_transition_lines: int = 2
    # Just inside the band, at least `border_inside_differs_fraction` of the line must differ from
    # the band colour by more than `border_inside_min_difference` levels (any channel): the band
    # ends along its whole length. A backdrop that continues inward beside the product does not.
    border_inside_differs_fraction: float = 0.9
    border_inside_min_difference: int = 20
    # The band's innermost line (before the transition lines) may drift at most this many levels
    # (median, any channel) from its outermost: a gradient (sky, vignette) drifts, a drawn
    # border does not. 12, not less: JPEG's chroma subsampling alone moves a saturated band by up
    # to 12 levels between its lines (a 5 px orange frame in the dev set, blue 15 -> 27).
    border_max_drift: int = 12
    # Frames inside frames (a mat around a thin line) are looked for this many levels deep.
    border_max_nesting: int = 2
    # A photo set inside a drawn shape (hexagon, rounded rectangle, polaroid) on a card leaves a
    # margin that is no straight band. Looked for on a copy shrunk to at most
    # `border_shape_analysis_px` when no band is found and the outermost line is one non-white
    # colour (`border_line_uniform_fraction` of it within `border_shape_colour_tolerance`
    # levels, tight: a drawn card is flat). The margin is that colour flooded in from the edges;
    # the largest region it encloses is the framed photo when it covers at least
    # `border_shape_min_area_fraction` of the frame, is convex (area over convex hull at least
    # `border_shape_min_solidity`), and is lined by the photo's own smooth backdrop: at least
    # `border_shape_min_lining_share` of the pixels just inside its outline lie within
    # `border_shape_colour_tolerance` of their median (a product's outline is lined by its
    # textured, shaded surface).
    border_shape_analysis_px: int = 256
    border_shape_colour_tolerance: int = 12
    border_shape_min_area_fraction: float = 0.4
    border_shape_min_solidity: float = 0.97
    border_shape_min_lining_share: float = 0.6

    # --- exposure ---------------------------------------------------------------------------------
    clipped_dark_max_luma: int = 5  # levels; luma at or below is clipped to black
    clipped_bright_min_luma: int = 250  # levels; luma at or above is clipped to white

    # --- sharpness --------------------------------------------------------------------------------
    # A larger product box is shrunk so its longest side is this many px before the Laplacian, so
    # the variance is comparable across image sizes (closely once the box is shrunk 1.5x or
    # more); a smaller one is measured as it is (enlarged, it would read soft from the
    # enlargement alone).
    sharpness_scale_px: int = 512
    # sharpness.score = var / (var + half_point), var in grey levels². 0.5 at the half point.
    sharpness_half_point: float = 100.0
    # The product mask is grown by this many px (at sharpness scale) so its outline is measured.
    sharpness_mask_dilation_px: int = 3
    # Suggested policy line (documentation for rule authors, not used here): below this
    # laplacian_var (grey levels², i.e. sharpness.score < 0.5) a product reads as blurred.
    sharpness_blurred_below: float = 100.0

    # --- colour -----------------------------------------------------------------------------------
    # color.grayscale: per-pixel channel spread (max - min, levels) has a mean at most
    # `grayscale_mean_spread_max` and its `grayscale_spread_percentile` at most
    # `grayscale_high_spread_max` (JPEG chroma noise stays well below both).
    grayscale_mean_spread_max: float = 3.0
    grayscale_high_spread_max: float = 12.0
    grayscale_spread_percentile: float = 99.0
