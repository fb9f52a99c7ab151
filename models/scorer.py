"""QualityScorer: BRISQUE on the product region of each image, then a versioned scorer card.

The plain class the QualityScorer deployment wraps (and the batch pipeline and tests call).

Where BRISQUE looks: the product box from preprocessing (`ModelInputs.product_box`) on the model
copy of the frame (`ModelInputs.rgb`, longest side <= 640 px), widened by a small margin. On a
packshot the white background is flat and would dominate the statistics (BRISQUE of a mostly
white frame says little about the product); the margin keeps the product's outline, whose blur or
ringing is part of the quality, inside the crop rather than on its edge, where the reference's
zero padding already makes its own strong edge. Pixels stay at model-copy scale: BRISQUE is
scale-dependent, and resampling each crop to a common size would itself blur or sharpen what it
measures. The model copy of a large photo is already shrunk, which hides some blur and noise:
quality.technical judges the picture as seen at <= 640 px.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch

from curator.contracts.vocabulary import AttributeValue
from models import scorer_cards
from models.brisque import Brisque
from models.preprocess import ModelInputs

logger = logging.getLogger(__name__)

MARGIN_FRACTION = 0.05  # margin on each side, as a share of the product box's longer side
MIN_MARGIN_PX = 4  # at least the MSCN window's reach (3 px) plus one
MIN_REGION_SIDE_PX = 32  # smaller boxes are widened (around their centre) to this, in the frame
# quality.technical of a frame too small for BRISQUE's two scales (under 8 px on a side): counted
# as the bottom of BRISQUE's usual range rather than failing the listing.
UNMEASURABLE_POINTS = 100.0


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def product_region(inputs: ModelInputs) -> np.ndarray:
    """The product box plus margin, cut from `inputs.rgb` (a view); the whole frame when the box
    is empty or not finite."""
    rgb = inputs.rgb
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = inputs.product_box
    left, right, top, bottom = x0 * width, x1 * width, y0 * height, y1 * height
    if not all(map(math.isfinite, (left, right, top, bottom))) or right <= left or bottom <= top:
        return rgb
    margin = max(MIN_MARGIN_PX, MARGIN_FRACTION * max(right - left, bottom - top))
    column_start, column_end = _widen(left, right, margin, width)
    row_start, row_end = _widen(top, bottom, margin, height)
    return rgb[row_start:row_end, column_start:column_end]


def _widen(start: float, end: float, margin: float, limit: int) -> tuple[int, int]:
    """[start, end) grown by `margin` and to MIN_REGION_SIDE_PX, in whole pixels within
    [0, limit)."""
    low, high = start - margin, end + margin
    if high - low < MIN_REGION_SIDE_PX:
        centre = (low + high) / 2
        low, high = centre - MIN_REGION_SIDE_PX / 2, centre + MIN_REGION_SIDE_PX / 2
    low_px, high_px = max(0, math.floor(low)), min(limit, math.ceil(high))
    return (low_px, high_px) if high_px > low_px else (0, limit)


class QualityScorer:
    """quality.technical (BRISQUE points of the product region) and quality.score/.scorer from
    the named card, for a batch in one batched BRISQUE pass."""

    def __init__(
        self,
        card: str = "card-v1",
        device: torch.device | None = None,
        cpu_threads: int | None = 1,
    ) -> None:
        # Per-image tensors here are small: intra-op threads buy nothing on the CPU and, beside
        # ONNX Runtime's own threads, oversubscribe the cores (measured 15x slower on 2 cores).
        # Ray already sets OMP_NUM_THREADS=1 in replicas; in-process callers get the same.
        # torch's setting is process-wide, as OpenCV's (BRISQUE's CPU filters); None leaves
        # both alone.
        if cpu_threads is not None:
            torch.set_num_threads(cpu_threads)
            cv2.setNumThreads(cpu_threads)
        self.card = scorer_cards.get(card)
        self.device = device if device is not None else default_device()
        self.brisque = Brisque.from_artifacts(self.device)
        logger.info("QualityScorer %s on %s", self.card.name, self.device)

    def score(
        self, batch: Sequence[tuple[ModelInputs, Mapping[str, AttributeValue]]]
    ) -> list[dict[str, AttributeValue]]:
        """Per image, in order: quality.technical, quality.score, quality.scorer."""
        needs = [name for name in self.card.needs if name != "quality.technical"]
        for index, (_, attributes) in enumerate(batch):
            missing = [name for name in needs if name not in attributes]
            if missing:
                raise KeyError(f"image {index}: card {self.card.name} needs {missing}")
        regions = [product_region(inputs) for inputs, _ in batch]
        min_side = self.brisque.config.min_side_px
        measurable = [i for i, region in enumerate(regions) if min(region.shape[:2]) >= min_side]
        points = np.full(len(batch), UNMEASURABLE_POINTS, dtype=np.float64)
        if measurable:
            points[measurable] = self.brisque.score([regions[i] for i in measurable])
        results: list[dict[str, AttributeValue]] = []
        for (_, attributes), technical in zip(batch, points.tolist(), strict=True):
            merged = {**attributes, "quality.technical": technical}
            results.append({
                "quality.technical": technical,
                "quality.score": self.card.score(merged),
                "quality.scorer": self.card.name,
            })
        return results
