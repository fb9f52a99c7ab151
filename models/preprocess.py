"""Preprocess stage: decode once, measure everything technical, hand compact inputs to the models.

Plain class, no Ray: the Serve deployment, the Ray Data batch pipeline and the tests all call
`Preprocessor.run`. Steps and where they look:

1. decode (full resolution, upright sRGB)                       -> file.*, hash.md5
2. border (full resolution, outer 8 % of each side)             -> frame.border
3. analysis copy of the content inside the border, shrunk by a whole factor to <= 512 px
                                                                -> background.*, composition.*,
                                                                   exposure.*, color.grayscale,
                                                                   hash.phash
4. product box cut from full resolution, rescaled to 512 px     -> sharpness.*
5. model copy of the whole frame (<= 640 px)                    -> ModelInputs
6. scorer card v0                                               -> quality.*
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np

from curator.contracts.errors import ImageError
from curator.contracts.vocabulary import AttributeValue
from models.decode import DecodedImage, DecodeLimits, decode_image
from models.measurements import background as background_measure
from models.measurements import color, composition, exposure, hashes, sharpness
from models.measurements.border import Border, detect_border
from models.measurements.file_info import file_attributes
from models.measurements.scaling import shrink_by_whole_factor, shrink_to
from models.measurements.thresholds import MeasurementThresholds
from models.quality import ScorerCardV0

FloatBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ItemRegion:
    """One object the background separates (a product component), for the item judgement the
    extractor makes once it knows where text, people and everyday objects are."""

    box: FloatBox  # 0..1 frame units
    area: float  # its pixels over frame pixels


@dataclass(frozen=True)
class ModelInputs:
    rgb: np.ndarray  # whole frame, longest side <= 640 px, uint8 H x W x 3, C-contiguous
    product_box: FloatBox  # x0, y0, x1, y1 of the product in 0..1 frame units
    # The separate objects on the background, largest first; empty when no background separates
    # from the product (a busy photo: there the whole frame is "product").
    items: tuple[ItemRegion, ...] = ()
    # Where the picture lies inside a border (frame.border), 0..1 frame units; the whole frame
    # when there is none.
    content_box: FloatBox = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class PreprocessResult:
    attributes: dict[str, AttributeValue]  # flat dotted names, plain Python scalars
    model_inputs: ModelInputs
    timings_ms: dict[str, float] = field(default_factory=dict)  # per step, and "total"


class _Stopwatch:
    def __init__(self) -> None:
        self.timings_ms: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_ms[name] = (time.perf_counter() - start) * 1000.0


class Preprocessor:
    """Bytes in, technical attributes and model inputs out; `ImageError` for unusable uploads."""

    def __init__(
        self,
        decode_limits: DecodeLimits = DecodeLimits(),  # noqa: B008 - frozen, shared safely
        thresholds: MeasurementThresholds = MeasurementThresholds(),  # noqa: B008
    ) -> None:
        self.decode_limits = decode_limits
        self.thresholds = thresholds
        self.scorer = ScorerCardV0()

    def run(self, data: bytes, image_id: str | None = None) -> PreprocessResult:
        start = time.perf_counter()
        watch = _Stopwatch()
        try:
            with watch.step("decode"):
                decoded = decode_image(data, self.decode_limits)
        except ImageError as error:
            error.image_id = image_id
            raise
        attributes, inputs = self._measure(decoded, watch)
        watch.timings_ms["total"] = (time.perf_counter() - start) * 1000.0
        return PreprocessResult(attributes=attributes, model_inputs=inputs,
                                timings_ms=watch.timings_ms)

    def _measure(
        self, decoded: DecodedImage, watch: _Stopwatch
    ) -> tuple[dict[str, AttributeValue], ModelInputs]:
        th = self.thresholds
        full = decoded.rgb
        height, width = full.shape[:2]
        attributes: dict[str, AttributeValue] = file_attributes(decoded)

        with watch.step("border"):
            border = detect_border(full, th)
            y0, y1, x0, x1 = border.inner_box(height, width)
            inner = full[y0:y1, x0:x1]
        with watch.step("resize"):
            model_rgb = shrink_to(full, th.model_input_max_side_px)
            analysis = shrink_by_whole_factor(inner, th.analysis_max_side_px)
        with watch.step("background"):
            segmentation = background_measure.segment(analysis, th)
            white, pure_white = background_measure.white_fractions(analysis, segmentation, th)
        with watch.step("composition"):
            placement = composition.measure_composition(segmentation)
        with watch.step("exposure"):
            grey = cv2.cvtColor(analysis, cv2.COLOR_RGB2GRAY)
            # No product found (an empty frame): the frame's exposure says more than zeros.
            on = segmentation.product if segmentation.product_box is not None else None
            histogram = exposure.luma_histogram(grey, on)
            exposed = exposure.measure_exposure(histogram, th)
        with watch.step("sharpness"):
            variance = self._sharpness(inner, analysis.shape[:2], segmentation)
        with watch.step("color"):
            grayscale = color.is_grayscale(color.channel_spread_histogram(analysis), th)
        with watch.step("hash"):
            md5 = hashes.pixel_md5(full)
            phash = hashes.perceptual_hash(grey)

        transparent = bool(decoded.transparent_fraction >= th.transparent_min_fraction)
        attributes.update({
            "background.white_fraction": float(white),
            "background.pure_white_fraction": float(pure_white),
            "background.transparent": transparent,
            # A transparent backdrop is composited on white for measuring, but what the file
            # holds is no background at all: not a white one.
            "background.is_white": (background_measure.is_white_backdrop(
                white, pure_white, placement.fill_ratio, th) and not transparent),
            "composition.fill_ratio": float(placement.fill_ratio),
            "composition.fill_area": float(placement.fill_area),
            "composition.touches_edge": bool(placement.touches_edge),
            "composition.touches_sides": bool(placement.touches_sides),
            "composition.item_count": int(placement.item_count),
            "composition.centre_offset": float(placement.centre_offset),
            "frame.border": border.found,
            "exposure.mean": float(exposed.mean),
            "exposure.clipped_dark": float(exposed.clipped_dark),
            "exposure.clipped_bright": float(exposed.clipped_bright),
            "exposure.contrast": float(exposed.contrast),
            "sharpness.laplacian_var": float(variance),
            "sharpness.score": float(sharpness.sharpness_score(variance, th)),
            "color.grayscale": bool(grayscale),
            "hash.md5": md5,
            "hash.phash": phash,
        })
        with watch.step("quality"):
            attributes.update(self.scorer.attributes(attributes))
        box = _frame_box(segmentation.product_box, analysis.shape[:2], border, height, width)
        items = _item_regions(segmentation, analysis.shape[:2], border, height, width)
        content = (x0 / width, y0 / height, x1 / width, y1 / height)
        return attributes, ModelInputs(rgb=model_rgb, product_box=box, items=items,
                                       content_box=content)

    def _sharpness(
        self,
        inner: np.ndarray,
        analysis_shape: tuple[int, int],
        segmentation: background_measure.Segmentation,
    ) -> float:
        """Laplacian variance on the product box, cut from the full-resolution content."""
        box = segmentation.product_box
        if box is None:
            box = (0, 0, analysis_shape[1], analysis_shape[0])
        ax0, ay0, ax1, ay1 = box
        scale_y = inner.shape[0] / analysis_shape[0]
        scale_x = inner.shape[1] / analysis_shape[1]
        fy0, fy1 = int(ay0 * scale_y), max(int(ay0 * scale_y) + 1, round(ay1 * scale_y))
        fx0, fx1 = int(ax0 * scale_x), max(int(ax0 * scale_x) + 1, round(ax1 * scale_x))
        grey = cv2.cvtColor(inner[fy0:fy1, fx0:fx1], cv2.COLOR_RGB2GRAY)
        mask = segmentation.product[ay0:ay1, ax0:ax1] if segmentation.separable else None
        return sharpness.laplacian_variance(grey, mask, self.thresholds)


def _item_regions(
    segmentation: background_measure.Segmentation,
    analysis_shape: tuple[int, int],
    border: Border,
    height: int,
    width: int,
) -> tuple[ItemRegion, ...]:
    if not segmentation.separable:
        return ()
    y0, y1, x0, x1 = border.inner_box(height, width)
    # Areas are measured on the content inside the border; rescale to the whole frame.
    content_share = (y1 - y0) * (x1 - x0) / (height * width)
    analysis_px = analysis_shape[0] * analysis_shape[1]
    regions = [
        ItemRegion(
            box=_frame_box(box, analysis_shape, border, height, width),
            area=area / analysis_px * content_share,
        )
        for box, area in zip(segmentation.item_boxes, segmentation.item_areas, strict=True)
    ]
    return tuple(sorted(regions, key=lambda region: -region.area))


def _frame_box(
    box: tuple[int, int, int, int] | None,
    analysis_shape: tuple[int, int],
    border: Border,
    height: int,
    width: int,
) -> FloatBox:
    """The product box in 0..1 units of the whole frame (border included)."""
    y0, y1, x0, x1 = border.inner_box(height, width)
    if box is None:
        return (x0 / width, y0 / height, x1 / width, y1 / height)
    ax0, ay0, ax1, ay1 = box
    inner_h, inner_w = y1 - y0, x1 - x0
    sy = inner_h / analysis_shape[0]
    sx = inner_w / analysis_shape[1]
    return (
        min(1.0, (x0 + ax0 * sx) / width),
        min(1.0, (y0 + ay0 * sy) / height),
        min(1.0, (x0 + ax1 * sx) / width),
        min(1.0, (y0 + ay1 * sy) / height),
    )
