"""composition.*: where the product sits in the frame, from the product mask.

All values are in units of the measured frame (the content inside a border, when there is one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.measurements.background import Segmentation


@dataclass(frozen=True)
class Composition:
    fill_ratio: float  # max(box_w / width, box_h / height)
    fill_area: float  # product pixels / frame pixels
    touches_edge: bool  # product mask, less its soft shadow, reaches an edge of the frame
    touches_sides: bool  # ... reaches the left or right edge of the frame
    item_count: int  # product components big enough to be items
    centre_offset: float  # distance of the box centre from the frame centre, frame units


def measure_composition(segmentation: Segmentation) -> Composition:
    product = segmentation.product
    height, width = product.shape
    box = segmentation.product_box
    if box is None:
        return Composition(0.0, 0.0, False, False, 0, 0.0)
    x0, y0, x1, y1 = box
    # A shadow running off the frame is not the product cut by it.
    solid = product if segmentation.shadow is None else product & (1 - segmentation.shadow)
    return Composition(
        fill_ratio=min(1.0, max((x1 - x0) / width, (y1 - y0) / height)),
        fill_area=np.count_nonzero(product) / (height * width),
        touches_edge=touches_edge(solid),
        touches_sides=touches_sides(solid),
        item_count=len(segmentation.item_boxes),
        centre_offset=centre_offset(box, height, width),
    )


def touches_edge(product: np.ndarray) -> bool:
    """True when any product pixel lies on the outermost row or column."""
    return bool(
        product[0].any() or product[-1].any() or product[:, 0].any() or product[:, -1].any()
    )


def touches_sides(product: np.ndarray) -> bool:
    """True when any product pixel lies on the leftmost or rightmost column. A model wearing a
    garment is cut off at the head or the feet, the top and bottom edges; a product running off
    a side is a close-up of a detail or a cropped shot."""
    return bool(product[:, 0].any() or product[:, -1].any())


def centre_offset(box: tuple[int, int, int, int], height: int, width: int) -> float:
    """Distance of the box centre from the frame centre, x in widths and y in heights."""
    x0, y0, x1, y1 = box
    dx = (x0 + x1) / 2 / width - 0.5
    dy = (y0 + y1) / 2 / height - 0.5
    return min(1.0, math.hypot(dx, dy))
