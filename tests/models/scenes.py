"""Generated scenes shared by the measurement tests, with the truth they were made from.

Images go through a JPEG round trip and the same working copies the preprocessor uses, so the
noise and scale are the real ones.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

from models.decode import decode_image
from models.measurements import background
from models.measurements.scaling import shrink_by_whole_factor
from models.measurements.thresholds import MeasurementThresholds
from tests.support import synthetic

TH = MeasurementThresholds()
SIZE = (600, 600)
# render_product arguments of synthetic.white_product_on_white
WHITE_PRODUCT = {"product_colour": synthetic.WHITE_PRODUCT_COLOUR, "textured": False,
                 "shading": synthetic.WHITE_PRODUCT_SHADING}


def decoded(image: Image.Image, quality: int = 90) -> np.ndarray:
    return decode_image(synthetic.to_jpeg_bytes(image, quality=quality)).rgb


def analysis_copy(image: Image.Image) -> np.ndarray:
    return shrink_by_whole_factor(decoded(image), TH.analysis_max_side_px)


@cache
def segmented(name: str) -> tuple[np.ndarray, background.Segmentation]:
    copy = analysis_copy(IMAGES[name]())
    return copy, background.segment(copy, TH)


def true_product_mask(**kwargs: object) -> np.ndarray:
    """Where the product is: the pixels that change when only the background colour changes."""
    on_black = np.asarray(synthetic.render_product(background=(0, 0, 0), **kwargs), dtype=int)
    on_green = np.asarray(synthetic.render_product(background=(0, 255, 0), **kwargs), dtype=int)
    return np.any(on_black != on_green, axis=2) == 0  # unchanged -> fully opaque product


IMAGES = {
    "white": lambda: synthetic.render_product(size=SIZE),
    "offwhite": lambda: synthetic.render_product(size=SIZE, background="offwhite"),
    "busy": lambda: synthetic.render_product(size=SIZE, background="busy"),
    "studio": lambda: synthetic.render_product(size=SIZE, background="studio", shape="bottle"),
    "white-on-white": lambda: synthetic.white_product_on_white(size=SIZE),
    "white-bottle-on-white": lambda: synthetic.white_product_on_white(size=SIZE, shape="bottle"),
    "grey-backdrop": lambda: synthetic.render_product(size=SIZE, background=(128, 128, 128)),
    "fill-50": lambda: synthetic.render_product(size=SIZE, fill=0.5, shape="disc"),
    "fill-85": lambda: synthetic.render_product(size=SIZE, fill=0.85, shape="bottle"),
    "fill-100": lambda: synthetic.render_product(size=SIZE, fill=1.0),
    "cropped": lambda: synthetic.crop_product(size=SIZE, side="right", overhang=0.2),
    "cropped-top": lambda: synthetic.crop_product(size=SIZE, side="top", overhang=0.1),
    "two-items": lambda: synthetic.two_items(size=SIZE),
    "off-centre": lambda: synthetic.render_product(size=SIZE, fill=0.4, centre=(0.3, 0.7)),
    "flat-colour": lambda: synthetic.render_product(size=SIZE, textured=False),
    "empty-white": lambda: Image.new("RGB", SIZE, (255, 255, 255)),
}
