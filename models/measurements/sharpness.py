"""sharpness.*: variance of the Laplacian on the product, at a fixed scale.

The product box is cut from the full-resolution grey image and resized so its longest side is
`sharpness_scale_px`; the variance is taken over the product mask grown by a few px (so the
outline counts, the empty background does not). A fixed scale makes a 4000 px and a 1000 px
photo of the same product read alike; a small product enlarged to the scale reads as soft, as it
will look when shown large.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.measurements.scaling import resize_longest_to
from models.measurements.thresholds import MeasurementThresholds


def laplacian_variance(
    grey: np.ndarray, mask: np.ndarray | None, thresholds: MeasurementThresholds
) -> float:
    """Variance (grey levels²) of the 3x3 Laplacian of `grey`, shrunk to the fixed scale when
    larger. A smaller box is measured as it is: enlarged it would read soft from the enlargement
    alone, and a small file is the size rules' business, not a blur.

    `mask` (any size, non-zero = product) is resized onto the rescaled image; None: everywhere.
    """
    scaled = (resize_longest_to(grey, thresholds.sharpness_scale_px)
              if max(grey.shape[:2]) > thresholds.sharpness_scale_px else grey)
    laplacian = cv2.Laplacian(scaled, cv2.CV_32F, ksize=1)
    if mask is None:
        return float(laplacian.var())
    size = (scaled.shape[1], scaled.shape[0])
    weights = cv2.resize((mask > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    grow = thresholds.sharpness_mask_dilation_px
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        weights = cv2.dilate(weights, kernel)
    if not weights.any():
        return float(laplacian.var())
    _, std = cv2.meanStdDev(laplacian, mask=weights)
    return float(std[0, 0]) ** 2


def sharpness_score(variance: float, thresholds: MeasurementThresholds) -> float:
    """0..1, 0.5 at `sharpness_half_point`."""
    variance = max(0.0, variance)
    return variance / (variance + thresholds.sharpness_half_point)
