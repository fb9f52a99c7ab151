"""Automatic image fixes: bytes in, a new baseline sRGB JPEG out, and what was done and why not.

A fix targets rule attributes (`FixDefinition.targets`) and must leave the others no worse. The
image is decoded once (`models.decode`, so the upload limits and colour handling are those of the
measurements) and the requested fixes run in one canonical order, whatever order they were asked
in (the registry's order):

1. `trim_border`: a border would be taken for the backdrop by the segmentation the next two use,
   and is found best at full resolution, before any resampling blurs a thin line.
2. `whiten_background`: before padding, so the white margin meets an already white backdrop and
   the padding's "is the background white" check sees the cleaned image.
3. `pad_to_fill`: may enlarge the canvas, so it comes before the size limit is enforced.
4. `downscale`: last geometric step, so the final canvas obeys the limit and every earlier step
   worked on full-resolution pixels.
5. `convert_to_srgb_jpeg`: the encoding itself. Every result is written that way, so any fix
   that applies also converts the file; this one only names the conversion as the purpose.

Fixes never upscale (that would invent detail). Where `pad_to_fill` would crop the canvas below
`min_longest_side` (500 px, the marketplace minimum; or the input's own longest side when that is
smaller) it adds white margin instead, and the fill stays short of its target. Cropping a 1000 px
image to its product may still take it below the 1000 px zoom line (a warning, where a small
product is a block).

`trim_border` keeps the canvas size, so the fill, which is measured inside a border, is measured
over the whole canvas afterwards: it drops by the border's share. `pad_to_fill` crops inside any
border, so its result has none.

Fixes measure the way `models.preprocess` does (`rules.fix_scene`): the content inside any
border, shrunk by a whole factor to the analysis size, segmented by
`models.measurements.background`. Masks are mapped back to full resolution; a box is widened by
one analysis pixel so a product is never cut. Each fix's parameters are in `rules.fix_params`,
the canvas geometry of padding and shrinking in `rules.fix_canvas`; this module holds the fixes,
their implementations and `apply_fixes`, the entry point; the catalogue (names, parameters,
targets) is `rules.fix_params`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pydantic
from PIL import Image

from curator.contracts.errors import CuratorError
from models.decode import DecodeLimits, decode_image
from models.measurements.background import Segmentation, edge_connected
from models.measurements.composition import touches_edge
from models.measurements.scaling import scaled_size
from models.measurements.thresholds import MeasurementThresholds
from rules.fix_canvas import WHITE, canvas_size, centre_on_white, crop_with_margin, resize_to
from rules.fix_params import (
    FIX_SPECS,
    ConvertToSrgbJpegParams,
    DownscaleParams,
    FixSpec,
    PadToFillParams,
    TrimBorderParams,
    WhitenBackgroundParams,
    fix_names,
    validate_fix_params,
)
from rules.fix_scene import Scene, analyse, full_resolution_box, full_resolution_mask, near_white

# Output encoding: quality 95 and 4:4:4 (no chroma subsampling) keep product edges clean.
# The catalogue's lookups, re-exported for the callers that apply fixes.
__all__ = ["FIXES", "FixDefinition", "FixError", "FixedImage", "apply_fixes", "fix_names",
           "validate_fix_params"]

JPEG_QUALITY = 95
# pad_to_fill pastes the product's box onto pure white: a backdrop darker than this (any channel)
# would show as a visible rectangle around the product (whiten it first).
_SEAMLESS_MIN_LEVEL = 253
# pad_to_fill has nothing to do when fill and aspect are already within this (absolute fill,
# relative aspect) of their targets.
_ALREADY_THERE = 0.01


class FixError(CuratorError):
    """A fix (or every requested fix) cannot apply to this image; `reason` says why."""

    status = 422
    code = "fix_not_applicable"

    def __init__(
        self, fix: str, reason: str, *, skipped: tuple[tuple[str, str], ...] = (),
        image_id: str | None = None,
    ) -> None:
        super().__init__(f"{fix}: {reason}", image_id=image_id)
        self.fix = fix
        self.reason = reason
        self.skipped = skipped

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (Ray replicas) with every attribute.
        return (_rebuild_fix_error, (self.fix, self.reason, self.skipped, self.image_id))


def _rebuild_fix_error(
    fix: str, reason: str, skipped: tuple[tuple[str, str], ...], image_id: str | None
) -> FixError:
    return FixError(fix, reason, skipped=skipped, image_id=image_id)


class _CannotApply(Exception):
    """Raised inside one fix; `apply_fixes` records it as skipped under the fix's name."""


# --- registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """What a fix may need to know about the upload besides its current pixels."""

    format: str
    color_mode: str
    thresholds: MeasurementThresholds


FixFunction = Callable[[np.ndarray, Any, _Source], np.ndarray]


@dataclass(frozen=True)
class FixDefinition:
    """A fix of the catalogue (rules.fix_params.FIX_SPECS) with the function that applies it."""

    spec: FixSpec
    apply: FixFunction = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def params(self) -> type[pydantic.BaseModel]:
        return self.spec.params

    @property
    def targets(self) -> tuple[str, ...]:
        return self.spec.targets


# --- applying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedImage:
    data: bytes  # baseline sRGB JPEG
    applied: tuple[str, ...]  # in the order they ran
    skipped: tuple[tuple[str, str], ...]  # (fix, reason): nothing to do, or cannot apply
    width: int
    height: int


def apply_fixes(
    data: bytes,
    fixes: Sequence[tuple[str, Mapping[str, Any]]],
    limits: DecodeLimits = DecodeLimits(),  # noqa: B008 - frozen, shared safely
    thresholds: MeasurementThresholds = MeasurementThresholds(),  # noqa: B008
) -> FixedImage:
    """Apply `fixes` (name, params) to the image in `data`.

    `ValueError` for an unknown fix, bad params or a fix listed twice (before decoding);
    `ImageError` for an unusable upload; `FixError` when no requested fix could do anything, or
    the file is animated.
    """
    requested = _validated(fixes)
    decoded = decode_image(data, limits)
    if decoded.animated:
        # The JPEG would keep the first frame only, which would also quietly pass the
        # no-animation rule: the seller's file needs replacing, not fixing.
        raise FixError(", ".join(requested), "the file is animated; a fixed image would keep "
                       "only its first frame")
    source = _Source(decoded.format, decoded.color_mode, thresholds)
    rgb = decoded.rgb
    applied: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name, definition in FIXES.items():
        if name not in requested:
            continue
        try:
            rgb = definition.apply(rgb, requested[name], source)
        except _CannotApply as refusal:
            skipped.append((name, str(refusal)))
        else:
            applied.append(name)
    if not applied:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped)
        raise FixError(", ".join(requested), f"no requested fix applies ({reasons})",
                       skipped=tuple(skipped))
    height, width = rgb.shape[:2]
    return FixedImage(encode_srgb_jpeg(rgb), tuple(applied), tuple(skipped), width, height)


def _validated(fixes: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, pydantic.BaseModel]:
    if not fixes:
        raise ValueError("no fixes requested")
    requested: dict[str, pydantic.BaseModel] = {}
    for name, params in fixes:
        if name in requested:
            raise ValueError(f"fix {name!r} is listed twice")
        requested[name] = validate_fix_params(name, params)
    return requested


def encode_srgb_jpeg(rgb: np.ndarray) -> bytes:
    """Baseline JPEG, 4:4:4, no ICC profile or EXIF: untagged 8-bit RGB is read as sRGB, and
    decoding already turned the picture upright."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(
        out, "JPEG", quality=JPEG_QUALITY, subsampling=0, progressive=False, optimize=True
    )
    return out.getvalue()


# --- the fixes ----------------------------------------------------------------------------------


def trim_border(rgb: np.ndarray, params: TrimBorderParams, source: _Source) -> np.ndarray:
    """Paint the border bands (and their blended transition lines) pure white: the content stays
    where it was and the canvas keeps its size. Only around a picture on white: around a scene
    or a grey backdrop the white band would be a new frame, one the border detector (which
    ignores white bands) could not see."""
    scene = analyse(rgb, source.thresholds)
    if not scene.border.found:
        raise _CannotApply("no border found")
    _require_white(scene, source.thresholds, "a white band would frame it anew")
    y0, y1, x0, x1 = scene.inner
    out = np.full_like(rgb, WHITE)
    out[y0:y1, x0:x1] = rgb[y0:y1, x0:x1]
    return out


def whiten_background(
    rgb: np.ndarray, params: WhitenBackgroundParams, source: _Source
) -> np.ndarray:
    """Set the near-white background connected to the image edges to exactly 255,255,255.

    Only pixels that the segmentation calls background and that are near-white at full
    resolution change; a shadow darker than `min_level` stays (nothing is feathered).
    """
    scene = analyse(rgb, source.thresholds)
    segmentation = _separable(scene, "whitening")
    share = scene.background_share_at(params.min_level)
    if share < params.min_share:
        raise _CannotApply(
            f"the background is not near-white (about RGB {segmentation.colour}; {share:.0%} of "
            f"it has every channel >= {params.min_level}, {params.min_share:.0%} needed): a grey,"
            " coloured or scenic backdrop is not fixed by whitening"
        )
    y0, y1, x0, x1 = scene.inner
    inner = rgb[y0:y1, x0:x1]
    candidates = cv2.bitwise_and(
        near_white(inner, params.min_level),
        full_resolution_mask(segmentation.background, inner.shape[:2]),
    )
    change = edge_connected(candidates).astype(bool) & np.any(inner != WHITE, axis=2)
    if not change.any():
        raise _CannotApply("the background already is pure white")
    out = rgb.copy()
    out[y0:y1, x0:x1][change] = WHITE
    return out


def pad_to_fill(rgb: np.ndarray, params: PadToFillParams, source: _Source) -> np.ndarray:
    """Crop to the product's box and centre it on a pure white canvas of `aspect_ratio` where it
    spans `fill_ratio` on its binding axis; never cuts into the product, never upscales."""
    scene = analyse(rgb, source.thresholds)
    segmentation = _separable(scene, "padding")
    if segmentation.product_box is None:
        raise _CannotApply("no product was found on the background")
    if touches_edge(segmentation.product):
        raise _CannotApply(
            "the product touches the image edge: it may be cut off, and padding would hide "
            "that (left for review)"
        )
    _require_seamless_white(scene, source.thresholds)
    box = full_resolution_box(scene, segmentation.product_box)
    height, width = rgb.shape[:2]
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    current_fill = max(box_w / width, box_h / height)
    if (abs(current_fill - params.fill_ratio) <= _ALREADY_THERE
            and abs(width / height / params.aspect_ratio - 1) <= _ALREADY_THERE):
        raise _CannotApply(
            f"the product already fills {current_fill:.0%} of a {width / height:.2f} frame"
        )
    floor = min(max(height, width), params.min_longest_side)
    canvas_w, canvas_h = canvas_size(box_w, box_h, params, floor)
    if (canvas_w, canvas_h) == (width, height) and current_fill < params.fill_ratio:
        raise _CannotApply(
            f"the product fills {current_fill:.0%}; a smaller canvas would drop below {floor} px "
            "and fixes never upscale"
        )
    margin = math.ceil(max(scene.scale))  # one analysis px: what the box may have missed
    room = ((canvas_w - box_w) // 2, (canvas_h - box_h) // 2)
    crop = crop_with_margin(rgb, box, scene.inner, margin, room)
    return centre_on_white(crop, box, (canvas_w, canvas_h), params.max_longest_side)


def _separable(scene: Scene, doing: str) -> Segmentation:
    if not scene.segmentation.separable:
        raise _CannotApply(
            f"no background separates from the product (a busy or scenic photo): {doing} would "
            "repaint the scene"
        )
    return scene.segmentation


def _require_white(scene: Scene, thresholds: MeasurementThresholds, otherwise: str) -> None:
    """Refuse unless the background is near-white at the strict per-pixel level (245).

    Stricter than `background.is_white`, which also passes a softly shaded light backdrop:
    padding or framing such a backdrop with pure white would leave a visible seam, so those
    fixes are refused there and the image goes to a person instead."""
    segmentation = scene.segmentation
    white = scene.background_share_at(thresholds.near_white_min_level)
    if not segmentation.separable or white < thresholds.white_background_min_fraction:
        raise _CannotApply(
            f"the background is not white ({white:.0%} near-white, about RGB "
            f"{segmentation.colour}): {otherwise}"
        )


def _require_seamless_white(scene: Scene, thresholds: MeasurementThresholds) -> None:
    _require_white(scene, thresholds, "padding it with white would frame the picture")
    segmentation = scene.segmentation
    if min(segmentation.colour) < _SEAMLESS_MIN_LEVEL:
        raise _CannotApply(
            f"the backdrop is off-white (about RGB {segmentation.colour}): a pure white margin "
            "would show a seam; whiten_background first"
        )


def downscale(rgb: np.ndarray, params: DownscaleParams, source: _Source) -> np.ndarray:
    longest = max(rgb.shape[:2])
    if longest <= params.max_side:
        raise _CannotApply(f"the longest side is {longest} px, within {params.max_side} px")
    height, width = scaled_size(rgb.shape[0], rgb.shape[1], params.max_side)
    return resize_to(rgb, width, height)


def convert_to_srgb_jpeg(
    rgb: np.ndarray, params: ConvertToSrgbJpegParams, source: _Source
) -> np.ndarray:
    """Decoding already made the pixels 8-bit sRGB; the final encoding writes the JPEG."""
    if source.format == "JPEG" and source.color_mode == "RGB":
        raise _CannotApply("the file already is an RGB JPEG")
    return rgb


_IMPLEMENTATIONS: dict[str, FixFunction] = {
    "trim_border": trim_border,
    "whiten_background": whiten_background,
    "pad_to_fill": pad_to_fill,
    "downscale": downscale,
    "convert_to_srgb_jpeg": convert_to_srgb_jpeg,
}
# Every fix of the catalogue with its implementation, in the catalogue's (canonical) order.
FIXES: dict[str, FixDefinition] = {
    name: FixDefinition(spec, _IMPLEMENTATIONS[name]) for name, spec in FIX_SPECS.items()
}
if set(_IMPLEMENTATIONS) != set(FIXES):
    raise RuntimeError(f"fixes without a catalogue entry: {set(_IMPLEMENTATIONS) - set(FIXES)}")
