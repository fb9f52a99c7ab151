"""Generated scenes for the text detector, with the truth they were made from.

Each scene is a product render with text stamped on it; the stamp's ink (the pixels the glyphs
cover) is kept as a mask, so a test can ask whether the detector's boxes cover the text, and
with which label, whatever the font and angle.

Fonts: Pillow's built-in scalable font everywhere; DejaVu (present on Debian with fontconfig)
for variety where it exists, else the built-in one again, so nothing depends on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from tests.support import synthetic
from tests.support.synthetic import font

Colour = tuple[int, int, int]
Expect = Literal["overlay", "on_product"]


@dataclass(frozen=True)
class Stamp:
    ink: np.ndarray  # H x W bool: pixels covered by the glyphs
    expect: Expect


@dataclass(frozen=True)
class TextScene:
    name: str
    image: Image.Image
    stamps: tuple[Stamp, ...]




def stamp(
    image: Image.Image,
    text: str,
    size: int,
    colour: Colour,
    anchor: tuple[float, float],
    angle: float = 0.0,
    opacity: float = 1.0,
    face: str = "",
    expect: Expect = "overlay",
) -> Stamp:
    """Draw `text` centred at `anchor` (0..1 frame units), turned by `angle` degrees."""
    typeface = font(size, face)
    left, top, right, bottom = (round(v) for v in typeface.getbbox(text))
    layer = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(layer).text((4 - left, 4 - top), text, fill=255, font=typeface)
    if angle:
        layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    x = round(anchor[0] * image.width - layer.width / 2)
    y = round(anchor[1] * image.height - layer.height / 2)
    alpha = layer.point(lambda level: round(level * opacity))
    image.paste(Image.new("RGB", layer.size, colour), (x, y), alpha)
    ink = np.zeros((image.height, image.width), dtype=bool)
    full = Image.new("L", image.size, 0)
    full.paste(layer, (x, y))
    ink |= np.asarray(full) > 127
    return Stamp(ink=ink, expect=expect)


def _badge(
    image: Image.Image, text: str, size: int, fill: Colour, centre: tuple[float, float],
    round_shape: bool = False,
) -> Stamp:
    typeface = font(size, "DejaVuSans-Bold.ttf")
    left, top, right, bottom = typeface.getbbox(text)
    half_w, half_h = (right - left) / 2 + size * 0.6, (bottom - top) / 2 + size * 0.5
    if round_shape:
        half_w = half_h = max(half_w, half_h)
    # Inside the frame, with a margin: a badge is placed whole.
    margin = 0.02 * image.width
    cx = min(max(centre[0] * image.width, half_w + margin), image.width - half_w - margin)
    cy = min(max(centre[1] * image.height, half_h + margin), image.height - half_h - margin)
    shape = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    draw = ImageDraw.Draw(image)
    if round_shape:
        draw.ellipse(shape, fill=fill)
    else:
        draw.rounded_rectangle(shape, radius=size * 0.4, fill=fill)
    return stamp(image, text, size, (255, 255, 255), (cx / image.width, cy / image.height),
                 face="DejaVuSans-Bold.ttf")


def _banner(
    image: Image.Image, text: str, size: int, fill: Colour, top: bool, ink: Colour
) -> Stamp:
    height = round(size * 1.8)
    y0 = 0 if top else image.height - height
    ImageDraw.Draw(image).rectangle((0, y0, image.width, y0 + height), fill=fill)
    return stamp(image, text, size, ink, (0.5, (y0 + height / 2) / image.height))


# --- overlay: text added on the background --------------------------------------------------------

_BACKGROUNDS: tuple[synthetic.Background, ...] = (
    "white", "offwhite", "studio", (236, 240, 248), (250, 238, 224), "white",
)
_INKS: tuple[Colour, ...] = ((20, 20, 20), (200, 30, 30), (30, 60, 170), (120, 120, 120),
                             (0, 130, 60), (240, 140, 0))
_SHAPES: tuple[synthetic.Shape, ...] = ("box", "bottle", "disc")
_CORNERS = ((0.2, 0.07), (0.8, 0.07), (0.2, 0.93), (0.8, 0.93))
_SLOGANS = ("BEST SELLER", "50% OFF", "NEW", "SALE", "FREE SHIPPING", "Limited Edition",
            "2 FOR 1", "www.shop-now.com", "HOT DEAL", "Top Rated")


def _overlay_layout(index: int, image: Image.Image) -> list[Stamp]:
    """One of a handful of layouts of added text, varied by `index`."""
    ink = _INKS[index % len(_INKS)]
    slogan = _SLOGANS[index % len(_SLOGANS)]
    size = (26, 34, 44, 56, 70)[index % 5] * image.width // 1000
    layout = index % 6
    if layout == 0:  # text in a corner
        return [stamp(image, slogan, size, ink, _CORNERS[(index // 6) % 4])]
    if layout == 1:  # a banner along the top or bottom
        fill = ((200, 30, 30), (20, 20, 20), (30, 60, 170))[index % 3]
        return [_banner(image, slogan.upper(), size, fill, top=index % 4 < 2,
                        ink=(255, 255, 255))]
    if layout == 2:  # a badge beside the product
        return [_badge(image, slogan.upper(), size, (210, 20, 40), _CORNERS[index % 4],
                       round_shape=False)]
    if layout == 3:  # "50% OFF", big, in a top corner
        return [stamp(image, "50% OFF", max(size, 60), (220, 0, 0), (0.22, 0.08),
                      face="DejaVuSans-Bold.ttf")]
    if layout == 4:  # a caption under the product, and a second line above it
        return [
            stamp(image, "Free shipping on orders over $50", size * 3 // 4, ink, (0.5, 0.95)),
            stamp(image, slogan, size, ink, (0.5, 0.05), face="DejaVuSerif.ttf"),
        ]
    # A watermark-like line across a corner, turned and half transparent.
    return [stamp(image, "SAMPLE WATERMARK", size, (90, 90, 90), (0.25, 0.2), angle=30,
                  opacity=0.6)]


def overlay_scene(index: int) -> TextScene:
    size = ((1000, 1000), (900, 1100), (1200, 900), (700, 700))[index % 4]
    image = synthetic.render_product(
        size, fill=0.62, background=_BACKGROUNDS[index % len(_BACKGROUNDS)],
        shape=_SHAPES[index % 3], seed=index, centre=(0.5, 0.52),
    )
    return TextScene(f"overlay-{index}", image, tuple(_overlay_layout(index, image)))


# --- print on the product ----------------------------------------------------------------------

_PRINT = ("ORGANIC", "Premium Coffee", "SHAMPOO", "500 ml", "Natural", "BRAND", "Extra Virgin",
          "VITAMIN C")


def on_product_scene(index: int) -> TextScene:
    """Text printed on the product: on its colour, or on a label drawn on it."""
    shape = _SHAPES[index % 3]
    backgrounds: tuple[synthetic.Background, ...] = ("white", "offwhite", "studio", "busy")
    background = backgrounds[index % 4]
    size = ((1000, 1000), (800, 1000))[index % 2]
    fill = 0.85
    colour = ((190, 70, 50), (40, 90, 170), (230, 200, 60), (60, 60, 60))[index % 4]
    if index % 6 == 5:  # a white product on white: only its outline parts it from the page
        colour = synthetic.WHITE_PRODUCT_COLOUR
        image = synthetic.render_product(size, fill, "white", product_colour=colour,
                                         textured=False, shape=shape, seed=100 + index,
                                         shading=synthetic.WHITE_PRODUCT_SHADING)
    else:
        image = synthetic.render_product(size, fill, background, product_colour=colour,
                                         textured=index % 3 == 0, shape=shape, seed=100 + index)
    x0, y0, x1, y1 = synthetic.product_box(size, fill, shape)
    word = _PRINT[index % len(_PRINT)]
    cx = (x0 + x1) / 2 / size[0]
    # Where the body is widest: a box's top third, a bottle's or disc's middle; every fourth
    # scene close to the product's top edge instead (the surroundings are half background).
    if index % 4 == 2:
        cy = (y0 + (y1 - y0) * {"box": 0.07, "bottle": 0.38, "disc": 0.16}[shape]) / size[1]
    else:
        cy = (y0 + (y1 - y0) * (0.2 if shape == "box" else 0.62)) / size[1]
    width = (x1 - x0) / size[0]
    text_px = max(18, round(0.11 * width * size[0]))
    if index % 2:  # a light label with dark print
        half_w, half_h = 0.4 * width * size[0], text_px * 0.9
        ImageDraw.Draw(image).rectangle(
            (cx * size[0] - half_w, cy * size[1] - half_h, cx * size[0] + half_w,
             cy * size[1] + half_h), fill=(245, 240, 228))
        ink: Colour = (25, 25, 35)
    else:  # print straight on the product's colour
        ink = (255, 255, 255) if sum(colour) < 450 else (20, 20, 20)
    text_px = min(text_px, _fitting_size(word, 0.75 * width * size[0], text_px))
    stamps = [stamp(image, word, text_px, ink, (cx, cy), expect="on_product",
                    face=("", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf")[index % 3])]
    return TextScene(f"on-product-{index}", image, tuple(stamps))


def _fitting_size(text: str, max_width_px: float, start: int) -> int:
    """The largest size up to `start` at which `text` is at most `max_width_px` wide."""
    size = start
    while size > 12 and font(size).getlength(text) > max_width_px:
        size -= 2
    return size


# --- no text at all ------------------------------------------------------------------------------

PLAIN: dict[str, Callable[[], Image.Image]] = {
    "white-box": lambda: synthetic.render_product((1000, 1000)),
    "white-bottle": lambda: synthetic.render_product((800, 1000), shape="bottle", seed=1),
    "offwhite-disc": lambda: synthetic.render_product((900, 900), background="offwhite",
                                                      shape="disc", seed=2),
    "studio-box": lambda: synthetic.render_product((1000, 1000), background="studio", fill=0.6,
                                                   shadow=True, seed=3),
    "busy-box": lambda: synthetic.render_product((1000, 1000), background="busy", seed=4),
    "busy-bottle": lambda: synthetic.render_product((1200, 900), background="busy",
                                                    shape="bottle", seed=5),
    "white-on-white": lambda: synthetic.white_product_on_white((1000, 1000)),
    "two-items": lambda: synthetic.two_items((1000, 800)),
}
