"""Deterministic test images whose truth is known: products on backgrounds, and awkward files.

Products look like products — shaded, outlined, printed with a label and fine texture — because
sharpness and the background/product split are measured on them. Everything is seeded: the same
arguments give the same pixels. Sizes are (width, height), as in Pillow.

Used by the unit tests and the benchmarks; never by the service itself.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from functools import cache
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

Colour = tuple[int, int, int]
Background = Literal["white", "offwhite", "studio", "busy"] | Colour
Shape = Literal["box", "bottle", "disc"]
Size = tuple[int, int]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in px, end exclusive

# Width over height of each silhouette's bounding box.
SHAPE_ASPECT: dict[str, float] = {"box": 0.78, "bottle": 0.38, "disc": 1.0}
OFFWHITE: Colour = (238, 236, 231)
DEFAULT_PRODUCT_COLOUR: Colour = (190, 70, 50)
WHITE_PRODUCT_COLOUR: Colour = (250, 250, 248)
WHITE_PRODUCT_SHADING = 0.2  # evenly lit: the body stays near white
# Gaussian sigma (px) of the lens blur applied to product detail, as in a sharp real photo.
_OPTICAL_SOFTNESS_PX = 0.6

# EXIF orientation -> the transpose that undoes `ImageOps.exif_transpose` (stores the picture so
# that a reader applying the tag shows it upright).
_INVERSE_ORIENTATION: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


# --- geometry ---------------------------------------------------------------------------------


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@cache
def font(size: int, face: str = "") -> Font:
    """`face` (a DejaVu file name) at `size` px when installed, else Pillow's built-in font."""
    if face:
        try:
            return ImageFont.truetype(f"/usr/share/fonts/truetype/dejavu/{face}", size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def product_box(
    size: Size = (1000, 1000),
    fill: float = 0.85,
    shape: Shape = "box",
    centre: tuple[float, float] = (0.5, 0.5),
) -> Box:
    """Where `render_product` puts the product: max(box_w/width, box_h/height) == fill.

    The box may reach past the frame (a cropped product); it is not clipped.
    """
    width, height = size
    aspect = SHAPE_ASPECT[shape]
    box_h = fill / max(aspect / width, 1 / height)
    box_w = aspect * box_h
    cx, cy = centre[0] * width, centre[1] * height
    return (
        round(cx - box_w / 2),
        round(cy - box_h / 2),
        round(cx + box_w / 2),
        round(cy + box_h / 2),
    )


def _rounded_rect_sdf(
    x: np.ndarray, y: np.ndarray, centre: tuple[float, float], half: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Signed distance (px, negative inside) to a rounded rectangle."""
    qx = np.abs(x - centre[0]) - (half[0] - radius)
    qy = np.abs(y - centre[1]) - (half[1] - radius)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    inside = np.minimum(np.maximum(qx, qy), 0)
    return outside + inside - radius


def _silhouette_sdf(shape: Shape, x: np.ndarray, y: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    if shape == "box":
        return _rounded_rect_sdf(x, y, (cx, (y0 + y1) / 2), (w / 2, h / 2), 0.06 * w)
    if shape == "disc":
        return np.hypot(x - cx, y - (y0 + y1) / 2) - w / 2
    # Bottle: cap, neck, shoulder and body, united.
    cap = _rounded_rect_sdf(x, y, (cx, y0 + 0.045 * h), (0.24 * w, 0.045 * h), 0.02 * w)
    neck = _rounded_rect_sdf(x, y, (cx, y0 + 0.16 * h), (0.17 * w, 0.09 * h), 0.01 * w)
    shoulder_y = y0 + 0.3 * h
    shoulder = np.hypot((x - cx) / (w / 2), (y - shoulder_y) / (0.09 * h)) - 1.0
    shoulder = shoulder * min(w / 2, 0.09 * h)
    body = _rounded_rect_sdf(x, y, (cx, y0 + 0.65 * h), (w / 2, 0.35 * h), 0.12 * w)
    return np.minimum(np.minimum(cap, neck), np.minimum(shoulder, body))


# --- painting ---------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Noise with features about shape/cells px wide, roughly -1..1."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _label_mask(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(label area, printed marks) masks 0..1 for a product region of (height, width)."""
    height, width = size
    label = Image.new("L", (width, height), 0)
    marks = Image.new("L", (width, height), 0)
    draw_label, draw_marks = ImageDraw.Draw(label), ImageDraw.Draw(marks)
    lx0, lx1 = round(0.12 * width), round(0.88 * width)
    ly0, ly1 = round(0.48 * height), round(0.8 * height)
    draw_label.rectangle((lx0, ly0, lx1, ly1), fill=255)
    # Rows of "words": dark bars of random lengths, like printed text.
    rows = 5
    row_h = max(2, (ly1 - ly0) // (rows * 2 + 1))
    for row in range(rows):
        y = ly0 + row_h * (2 * row + 1)
        x = lx0 + row_h
        while x < lx1 - row_h:
            length = int(rng.integers(2, 7)) * row_h
            draw_marks.rectangle((x, y, min(x + length, lx1 - row_h), y + row_h - 1), fill=255)
            x += length + row_h
    # A logo disc above the label.
    r = max(2, round(0.14 * width))
    cx, cy = width // 2, round(0.3 * height)
    draw_marks.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=max(1, r // 5))
    return (np.asarray(label, dtype=np.float32) / 255, np.asarray(marks, dtype=np.float32) / 255)


def _product_layer(
    frame: Size,
    box: Box,
    shape: Shape,
    colour: Colour,
    textured: bool,
    rng: np.random.Generator,
    shading: float = 1.0,
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """((y0, y1, x0, x1) region in the frame, RGB float 0..255, alpha 0..1) of one product.

    `shading` scales the lighting falloff across the body (0: evenly lit, 1: studio light).
    """
    width, height = frame
    bx0, by0, bx1, by1 = box
    rx0, ry0 = max(0, bx0 - 2), max(0, by0 - 2)
    rx1, ry1 = min(width, bx1 + 2), min(height, by1 + 2)
    ys, xs = np.mgrid[ry0:ry1, rx0:rx1].astype(np.float32) + 0.5
    distance = _silhouette_sdf(shape, xs, ys, box)
    alpha = np.clip(0.5 - distance, 0.0, 1.0)

    bw, bh = bx1 - bx0, by1 - by0
    u = (xs - bx0) / bw  # 0..1 across the product
    v = (ys - by0) / bh
    if shape == "box":
        shade = 0.8 + 0.3 * (1 - u) * (1 - 0.5 * v)
    else:  # round things: cylindrical light with a highlight stripe
        across = np.clip(u, 0, 1)
        shade = 0.55 + 0.5 * np.clip(np.sin(np.pi * across), 0, 1) ** 0.7
        shade += 0.25 * np.exp(-(((across - 0.3) / 0.05) ** 2))
    shade = 1.0 + shading * (shade - 1.0)
    base = np.asarray(colour, dtype=np.float32)
    lit = np.minimum(base[None, None, :] * shade[:, :, None], 255.0)  # highlights saturate
    # Darker towards the outline (ambient occlusion): a white product stays visible on white.
    rim = max(2.0, 0.012 * max(bw, bh))
    occlusion = 1 - 0.28 * np.exp(np.minimum(distance, 0) / rim)
    rgb = lit * occlusion[:, :, None]
    if textured:
        region_shape = (ry1 - ry0, rx1 - rx0)
        grain = _smooth_noise(rng, region_shape, max(4, region_shape[1] // 6))
        weave = _smooth_noise(rng, region_shape, max(8, region_shape[1] // 3))
        rgb *= (1 + 0.06 * grain + 0.05 * weave)[:, :, None]
        label, marks = _label_mask(region_shape, rng)
        paper = np.asarray((246, 242, 232), dtype=np.float32) * (0.75 + 0.25 * shade[:, :, None])
        ink = np.asarray((30, 30, 45), dtype=np.float32)
        rgb = rgb * (1 - label[:, :, None]) + paper * label[:, :, None]
        rgb = rgb * (1 - marks[:, :, None]) + ink * marks[:, :, None]
        # A camera's optics soften what the drawing made pixel-sharp; its sensor adds grain.
        rgb = cv2.GaussianBlur(np.ascontiguousarray(rgb), (0, 0), _OPTICAL_SOFTNESS_PX)
        rgb += rng.normal(0.0, 2.0, region_shape)[:, :, None].astype(np.float32)
    return (ry0, ry1, rx0, rx1), np.clip(rgb, 0, 255), alpha


def _background(size: Size, background: Background, rng: np.random.Generator) -> np.ndarray:
    """H x W x 3 float 0..255."""
    width, height = size
    if background == "white":
        return np.full((height, width, 3), 255.0, dtype=np.float32)
    if background == "offwhite":
        gradient = np.linspace(-4, 4, height, dtype=np.float32)[:, None, None]
        noise = rng.normal(0, 1.5, (height, width, 1)).astype(np.float32)
        return np.asarray(OFFWHITE, dtype=np.float32) + gradient + noise
    if background == "studio":
        return _studio_background(size, rng)
    if background == "busy":
        return _busy_background(size, rng)
    return np.broadcast_to(np.asarray(background, dtype=np.float32), (height, width, 3)).copy()


def _studio_background(size: Size, rng: np.random.Generator) -> np.ndarray:
    """A grey paper sweep: light at the top, darker towards the bottom, darker corners."""
    width, height = size
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    level = 238 - 46 * y**1.5 - 10 * x**2
    noise = rng.normal(0, 1.0, (height, width)).astype(np.float32)
    return np.repeat((level + noise)[:, :, None], 3, axis=2) * np.asarray(
        (1.0, 0.99, 0.97), dtype=np.float32)


def _busy_background(size: Size, rng: np.random.Generator) -> np.ndarray:
    """A photo-like scene: soft colour fields, furniture-like blocks, grain."""
    width, height = size
    fields = np.stack([_smooth_noise(rng, (height, width), 4) for _ in range(3)], axis=2)
    scene = Image.fromarray(np.uint8(np.clip(120 + 45 * fields, 0, 255)))
    draw = ImageDraw.Draw(scene)
    for _ in range(24):
        x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        w, h = rng.uniform(0.05, 0.45) * width, rng.uniform(0.05, 0.45) * height
        fill = tuple(int(c) for c in rng.integers(20, 235, 3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
        else:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=fill)
    scene = scene.filter(ImageFilter.GaussianBlur(1.2))
    pixels = np.asarray(scene, dtype=np.float32)
    return pixels + rng.normal(0, 4.0, (height, width, 1)).astype(np.float32)


def _compose(
    canvas: np.ndarray, layer: tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]
) -> None:
    (y0, y1, x0, x1), rgb, alpha = layer
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = region * (1 - alpha[:, :, None]) + rgb * alpha[:, :, None]


def _shadow(canvas: np.ndarray, box: Box) -> None:
    """A soft contact shadow under the product."""
    height, width = canvas.shape[:2]
    x0, _, x1, y1 = box
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, rx, ry = (x0 + x1) / 2, 0.55 * (x1 - x0), 0.04 * (x1 - x0) + 4
    falloff = np.exp(-(((xs - cx) / rx) ** 2 + ((ys - y1) / ry) ** 2))
    canvas *= (1 - 0.35 * falloff)[:, :, None]


def _to_image(canvas: np.ndarray) -> Image.Image:
    return Image.fromarray(np.uint8(np.clip(np.rint(canvas), 0, 255)), "RGB")


# --- products ---------------------------------------------------------------------------------


def render_product(
    size: Size = (1000, 1000),
    fill: float = 0.85,
    background: Background = "white",
    product_colour: Colour = DEFAULT_PRODUCT_COLOUR,
    textured: bool = True,
    shape: Shape = "box",
    centre: tuple[float, float] = (0.5, 0.5),
    seed: int = 0,
    shadow: bool = False,
    shading: float = 1.0,
) -> Image.Image:
    """One product on a background; its box is `product_box(size, fill, shape, centre)`.

    `shading`: strength of the light falloff across the body (0 flat .. 1 studio light); the
    darker rim along the outline is always there.
    """
    rng = np.random.default_rng(seed)
    canvas = _background(size, background, rng)
    box = product_box(size, fill, shape, centre)
    if shadow:
        _shadow(canvas, box)
    _compose(canvas, _product_layer(size, box, shape, product_colour, textured, rng, shading))
    return _to_image(canvas)


def two_items(
    size: Size = (1000, 1000),
    fill: float = 0.7,
    background: Background = "white",
    colours: tuple[Colour, Colour] = ((190, 70, 50), (40, 90, 170)),
    shape: Shape = "bottle",
    seed: int = 0,
) -> Image.Image:
    """Two separate products side by side, each with linear fill `fill`."""
    rng = np.random.default_rng(seed)
    canvas = _background(size, background, rng)
    for colour, centre_x in zip(colours, (0.3, 0.7), strict=True):
        box = product_box(size, fill, shape, (centre_x, 0.5))
        _compose(canvas, _product_layer(size, box, shape, colour, True, rng))
    return _to_image(canvas)


def crop_product(
    size: Size = (1000, 1000),
    side: Literal["left", "right", "top", "bottom"] = "right",
    overhang: float = 0.15,
    fill: float = 0.8,
    background: Background = "white",
    shape: Shape = "box",
    seed: int = 0,
) -> Image.Image:
    """A product cut by the frame edge: `overhang` of its box lies beyond `side`."""
    width, height = size
    x0, y0, x1, y1 = product_box(size, fill, shape)
    bw, bh = (x1 - x0) / width, (y1 - y0) / height
    centre = {
        "right": (1 - bw / 2 + overhang * bw, 0.5),
        "left": (bw / 2 - overhang * bw, 0.5),
        "bottom": (0.5, 1 - bh / 2 + overhang * bh),
        "top": (0.5, bh / 2 - overhang * bh),
    }[side]
    return render_product(size, fill, background, shape=shape, centre=centre, seed=seed)


def white_product_on_white(
    size: Size = (1000, 1000), fill: float = 0.85, shape: Shape = "box", seed: int = 0
) -> Image.Image:
    """A white product on pure white, evenly lit: its body is within a few levels of the
    background (>= 240) and only its shaded, darker outline tells it apart."""
    return render_product(
        size, fill, "white", product_colour=WHITE_PRODUCT_COLOUR, textured=False, shape=shape,
        seed=seed, shading=WHITE_PRODUCT_SHADING,
    )


def grey_in_rgb(
    size: Size = (1000, 1000), fill: float = 0.85, shape: Shape = "box", seed: int = 0
) -> Image.Image:
    """A grey picture stored as RGB (R == G == B everywhere)."""
    return render_product(size, fill, "white", shape=shape, seed=seed).convert("L").convert("RGB")


def transparent_product(
    size: Size = (600, 600), fill: float = 0.8, shape: Shape = "bottle", seed: int = 0
) -> Image.Image:
    """RGBA: a product on a fully transparent background whose hidden colour is black."""
    rng = np.random.default_rng(seed)
    width, height = size
    box = product_box(size, fill, shape)
    (y0, y1, x0, x1), rgb, alpha = _product_layer(size, box, shape, DEFAULT_PRODUCT_COLOUR,
                                                  True, rng)
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[y0:y1, x0:x1, :3] = np.uint8(np.clip(np.rint(rgb), 0, 255))
    rgba[y0:y1, x0:x1, 3] = np.uint8(np.rint(alpha * 255))
    return Image.fromarray(rgba, "RGBA")


# --- edits ------------------------------------------------------------------------------------


def add_border(image: Image.Image, width_px: int, colour: Colour = (40, 40, 40)) -> Image.Image:
    """The picture framed by a band of `width_px` on every side (the canvas grows)."""
    return ImageOps.expand(image, border=width_px, fill=colour)


def blur(image: Image.Image, radius: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


# --- files ------------------------------------------------------------------------------------


def to_jpeg_bytes(
    image: Image.Image, quality: int = 90, exif_orientation: int | None = None
) -> bytes:
    """JPEG bytes; with `exif_orientation`, stored turned so a reader applying the tag shows
    `image` upright."""
    out = io.BytesIO()
    if exif_orientation is None or exif_orientation == 1:
        image.save(out, "JPEG", quality=quality)
        return out.getvalue()
    stored = image.transpose(_INVERSE_ORIENTATION[exif_orientation])
    exif = Image.Exif()
    exif[0x0112] = exif_orientation
    stored.save(out, "JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


def to_cmyk_jpeg_bytes(
    image: Image.Image, quality: int = 95, icc_profile: bytes | None = None
) -> bytes:
    out = io.BytesIO()
    options = {"icc_profile": icc_profile} if icc_profile is not None else {}
    image.convert("CMYK").save(out, "JPEG", quality=quality, **options)
    return out.getvalue()


def to_png_bytes(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def to_png16_bytes(image: Image.Image) -> bytes:
    """A 16-bit greyscale PNG (mode I;16) of `image`, 8-bit level L stored as L * 257."""
    levels = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return to_png_bytes(Image.fromarray(levels.astype(np.uint16)))  # uint16 -> mode I;16


def to_palette_png_bytes(rgba: Image.Image) -> bytes:
    """A palette PNG with one transparent index, from an RGBA picture (alpha thresholded)."""
    alpha = np.asarray(rgba.getchannel("A"))
    palette = rgba.convert("RGB").quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    indices = np.asarray(palette).copy()
    indices[alpha < 128] = 255
    out = Image.fromarray(indices, "P")
    colours = palette.getpalette() or []
    colours = [*(colours + [0] * 768)[:765], 0, 0, 0]
    out.putpalette(colours)
    return to_png_bytes(out, transparency=255)


def animated_gif_bytes(
    size: Size = (120, 90),
    colours: Sequence[Colour] = ((200, 30, 30), (30, 200, 30), (30, 30, 200)),
) -> bytes:
    """An animated GIF, one flat colour per frame; the first frame is `colours[0]`."""
    frames = [Image.new("RGB", size, colour) for colour in colours]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def bomb_png_header(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


# PNG colour types (grey, RGB, grey + alpha, RGBA) -> samples per pixel.
_PNG_SAMPLES = {0: 1, 2: 3, 4: 2, 6: 4}


def bomb_png(width: int, height: int, *, bit_depth: int = 16, colour_type: int = 0,
             level: int = 9) -> bytes:
    """A complete, decodable PNG of `width` x `height` black pixels that compresses to almost
    nothing (a 49 MP 16-bit grey one is ~100 KB): a decompression bomb that passes a pixel-count
    limit it stays under. Colour type 0 at 16 bits opens as mode I;16, 6 at 8 bits as RGBA.
    Rows are compressed as they are made, so making one costs no more than a row of memory."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = b"\x00" * (1 + width * _PNG_SAMPLES[colour_type] * bit_depth // 8)  # filter 0, zeros
    packer = zlib.compressobj(level)
    rows_per_step = max(1, 2**22 // len(row))
    parts = []
    for start in range(0, height, rows_per_step):
        parts.append(packer.compress(row * min(rows_per_step, height - start)))
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts))
            + chunk(b"IEND", b""))
