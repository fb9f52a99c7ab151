"""Which DB regions are text, and which are whole objects the model lit up.

PP-OCRv6's detector also answers with one large blob on many plain packshots: a bag, a ring, an
iPod, a face (seen on the eval photos; 120-500 canvas px on their shorter side at 640). Two
checks, both on the unclipped rectangle:

- height: a region whose shorter side exceeds `max_line_height` of the canvas is not a line of
  text;
- strokes: a line of text crosses about five stroke edges per column whatever its size, so its
  edge density is about 5 / height; a smooth object has few edges inside its outline. Regions
  taller than `stroke_check_height` of the canvas must reach `min_edge_density`.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.detectors.db_postprocess import TextRegion
from models.detectors.text_settings import TextDetectorSettings

# Canny hysteresis thresholds (grey levels): the edges of printed strokes, not JPEG noise.
_CANNY_LOW, _CANNY_HIGH = 50, 150


def edge_map(rgb: np.ndarray) -> np.ndarray:
    """uint8 0/255 Canny edges of an H x W x 3 uint8 image."""
    return cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), _CANNY_LOW, _CANNY_HIGH)


def edge_density(edges: np.ndarray, region: TextRegion) -> float:
    """Share of the pixels inside the region's rectangle that are edges."""
    height, width = edges.shape
    corners = region.corners
    x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, width))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 1, 0, width))
    y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, height))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 1, 0, height))
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    shifted = corners - np.asarray([x0, y0], dtype=np.float32)
    cv2.fillPoly(mask, [np.rint(shifted).astype(np.int32)], 1)
    inside = int(np.count_nonzero(mask))
    if inside == 0:
        return 0.0
    return float(np.count_nonzero(edges[y0:y1, x0:x1][mask > 0])) / inside


def text_like(
    regions: list[TextRegion], canvas_rgb: np.ndarray, settings: TextDetectorSettings
) -> list[TextRegion]:
    """The regions that pass the height and stroke checks; `canvas_rgb` is the image's part of
    the canvas (the regions' coordinates)."""
    side = settings.canvas_px
    kept: list[TextRegion] = []
    edges: np.ndarray | None = None
    for region in regions:
        height = region.text_height
        if height > settings.max_line_height * side:
            continue
        if height > settings.stroke_check_height * side:
            if edges is None:
                edges = edge_map(canvas_rgb)
            if edge_density(edges, region) < settings.min_edge_density:
                continue
        kept.append(region)
    return kept
