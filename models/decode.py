"""Safe image decoding: bytes in, one upright 8-bit sRGB array out, or an `ImageError`.

Uploads are untrusted. The size limits are checked before any pixel is decoded (Pillow reads only
the header in `Image.open`), only the allowed formats' plugins are tried, and every Pillow failure
becomes an `ImageError` with a stable code:

- `empty_image`: no bytes at all
- `image_too_large`: more bytes than `DecodeLimits.max_bytes`
- `unsupported_format`: not one of the allowed formats
- `too_many_pixels`: width x height above `DecodeLimits.max_pixels`, or its decoding would need
  more working memory than `DecodeLimits.max_decode_bytes` (decompression bombs)
- `corrupt_image`: a known format whose data is truncated or broken

Memory: what decoding and measuring an image costs is known from its header (`read_header`):
width x height x the bytes per pixel its colour mode takes on the way to 8-bit RGB and through the
measurements (`DECODE_BYTES_PER_PIXEL`). A process that decodes several images at once holds
their costs against one `DecodeBudget` (models.decode_budget), so its peak memory is bounded
whatever arrives.

Colour handling: CMYK goes through its embedded ICC profile when there is one; transparency is
composited on white (a transparent packshot is a product on white); 16-bit samples are scaled,
not clipped, to 8 bit; the first frame of an animation is the one assessed.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageCms, ImageOps

from curator.contracts.errors import ImageError

logger = logging.getLogger(__name__)

DEFAULT_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "GIF"})

# Leading bytes of the allowed formats: lets a broken file of a known format be told
# (`corrupt_image`) from something that is no allowed format at all (`unsupported_format`).
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "GIF": (b"GIF87a", b"GIF89a"),
    "TIFF": (b"II*\x00", b"MM\x00*"),
    "WEBP": (b"RIFF",),  # followed by 4 size bytes and b"WEBP"; checked below
}

_ORIENTATION_TAG = 0x0112
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


# Working memory of decoding and measuring one image (models.preprocess.Preprocessor.run), bytes
# per pixel, by the file's Pillow mode: what each further pixel adds to the peak RSS of a fresh
# process running one 3 MP and one 12 MP image of that mode (2026-12-05: RGB JPEG 10.0, L PNG
# 11.0, CMYK JPEG 14.0, I;16 PNG 16.0, RGBA PNG 29.4, F TIFF 40.0), with 20-30 % to spare;
# tests/models/test_decode_budget.py measures them again. Alpha is composited in 16-bit arrays
# and float greys are stretched in float64: those modes cost the most.
DECODE_BYTES_PER_PIXEL: dict[str, int] = {
    "RGB": 12, "YCbCr": 12, "RGBX": 12,
    "L": 14, "1": 14, "P": 14,
    "CMYK": 18,
    "I;16": 20, "I;16L": 20, "I;16B": 20, "I;16N": 20,
    "I": 24,
    "LA": 36, "La": 36, "PA": 36, "RGBA": 36, "RGBa": 36,
    "F": 48,
}
UNKNOWN_MODE_BYTES_PER_PIXEL = 48  # a mode not measured: as the dearest


@dataclass(frozen=True)
class DecodeLimits:
    """What an upload may be. Checked before pixels are decoded."""

    max_pixels: int = 50_000_000  # width x height, px
    max_bytes: int = 25 * 2**20  # file size, bytes
    allowed_formats: frozenset[str] = field(default=DEFAULT_FORMATS)
    # One image's decoding working memory (`ImageHeader.decode_bytes`), bytes; None: unbounded.
    # The replica's whole decode budget: an image over it could never be decoded there.
    max_decode_bytes: int | None = None


@dataclass(frozen=True)
class ImageHeader:
    """What an image file declares before any pixel is decoded."""

    format: str
    mode: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decode_bytes(self) -> int:
        """Working memory decoding and measuring it takes (DECODE_BYTES_PER_PIXEL)."""
        return self.pixels * DECODE_BYTES_PER_PIXEL.get(self.mode, UNKNOWN_MODE_BYTES_PER_PIXEL)


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # H x W x 3 uint8 sRGB, upright (EXIF orientation applied), read-only
    format: str  # Pillow format name: JPEG, PNG, WEBP, TIFF, GIF
    color_mode: str  # Pillow mode of the file before conversion: RGB, CMYK, P, RGBA, I;16, L…
    animated: bool  # more than one frame; `rgb` is the first
    dpi: float | None  # horizontal dots per inch recorded in the file, if any
    n_bytes: int  # size of the encoded file
    # Share of pixels the file leaves mostly transparent (alpha < 128), composited on white in
    # `rgb`: a transparent backdrop looks white here, but it is not a white background.
    transparent_fraction: float = 0.0

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits()) -> DecodedImage:
    """Decode `data` into an upright 8-bit sRGB array; raise `ImageError` for anything unsafe."""
    return _image_errors(data, limits, _decode)


def read_header(data: bytes, limits: DecodeLimits = DecodeLimits()) -> ImageHeader:
    """The file's format, mode and size from its header alone (Pillow's lazy open decodes no
    pixel); `ImageError` for whatever `decode_image` would refuse before decoding."""
    return _image_errors(data, limits, _header)


_T = TypeVar("_T")


def _image_errors(data: bytes, limits: DecodeLimits,
                  read: Callable[[bytes, DecodeLimits], _T]) -> _T:
    """`read(data, limits)`, with every failure turned into an `ImageError` with a stable code."""
    if not data:
        raise ImageError("the image is empty (0 bytes)", code="empty_image")
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"the file has {len(data)} bytes, more than the limit of {limits.max_bytes}",
            code="image_too_large",
        )
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a bomb is a bomb. (The
            # filter is process-wide; threads racing here all want the same thing.)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return read(data, limits)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image has too many pixels: {exc}", code="too_many_pixels") from None
    except Image.UnidentifiedImageError:
        known = _sniff_format(data)
        allowed = ", ".join(sorted(limits.allowed_formats))
        if known is not None and known in limits.allowed_formats:
            raise ImageError(
                f"the file starts like a {known} image but cannot be read", code="corrupt_image"
            ) from None
        if known is not None:
            raise ImageError(
                f"{known} images are not accepted (accepted: {allowed})", code="unsupported_format"
            ) from None
        raise ImageError(
            f"not an image in a supported format ({allowed})", code="unsupported_format"
        ) from None
    except MemoryError:
        raise ImageError("the image is too large to decode", code="too_many_pixels") from None
    except Exception as exc:  # Pillow's decoders raise many types; none may escape
        raise ImageError(
            f"the image data is truncated or corrupt ({type(exc).__name__}: {exc})",
            code="corrupt_image",
        ) from None


def _open(data: bytes, limits: DecodeLimits) -> tuple[Image.Image, ImageHeader]:
    """Pillow's lazy open (the header only) and the checks that need no pixel."""
    image: Image.Image = Image.open(io.BytesIO(data), formats=sorted(limits.allowed_formats))
    file_format = image.format or ""
    if file_format not in limits.allowed_formats:
        raise ImageError(
            f"format {file_format or 'unknown'} is not accepted", code="unsupported_format"
        )
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"the image has no pixels ({width}x{height})", code="corrupt_image")
    header = ImageHeader(file_format, image.mode, width, height)
    if header.pixels > limits.max_pixels:
        raise ImageError(
            f"the image is {width}x{height} = {header.pixels} px, more than the limit of "
            f"{limits.max_pixels}",
            code="too_many_pixels",
        )
    if limits.max_decode_bytes is not None and header.decode_bytes > limits.max_decode_bytes:
        mib = header.decode_bytes / 2**20
        raise ImageError(
            f"the image is {width}x{height} px in mode {header.mode}: decoding it takes about "
            f"{mib:.0f} MiB, more than the {limits.max_decode_bytes / 2**20:.0f} MiB a replica "
            "decodes at once",
            code="too_many_pixels",
        )
    return image, header


def _header(data: bytes, limits: DecodeLimits) -> ImageHeader:
    return _open(data, limits)[1]


def _decode(data: bytes, limits: DecodeLimits) -> DecodedImage:
    image, header = _open(data, limits)
    file_format = header.format
    color_mode = image.mode
    animated = bool(getattr(image, "is_animated", False))
    if animated:
        image.seek(0)  # `is_animated` may have peeked at frame 1
    dpi = _dpi(image.info)
    image.load()
    orientation = _orientation(image)
    if orientation not in (None, 1):
        image = ImageOps.exif_transpose(image)
    pixels, transparent_fraction = _to_rgb_array(image)
    rgb = np.ascontiguousarray(pixels)
    rgb.flags.writeable = False
    return DecodedImage(
        rgb=rgb,
        format=file_format,
        color_mode=color_mode,
        animated=animated,
        dpi=dpi,
        n_bytes=len(data),
        transparent_fraction=transparent_fraction,
    )


def _sniff_format(data: bytes) -> str | None:
    for name, prefixes in _MAGIC.items():
        if any(data.startswith(prefix) for prefix in prefixes):
            if name == "WEBP" and data[8:12] != b"WEBP":
                continue
            return name
    return None


def _orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(_ORIENTATION_TAG)
    except Exception:  # a broken EXIF block must not lose a good image
        logger.debug("unreadable EXIF block; orientation ignored", exc_info=True)
        return None
    return int(value) if isinstance(value, int) else None


def _dpi(info: Mapping[Any, Any]) -> float | None:
    raw = info.get("dpi")
    if not isinstance(raw, tuple) or not raw:
        return None
    try:
        value = float(raw[0])
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _to_rgb_array(image: Image.Image) -> tuple[np.ndarray, float]:
    """Any Pillow mode -> contiguous H x W x 3 uint8 sRGB, and the share of pixels left mostly
    transparent (composited on white here)."""
    mode = image.mode
    # np.asarray of a Pillow image is already a fresh, contiguous copy.
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8), 0.0
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(image), dtype=np.uint8), 0.0
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        grey = _wide_to_uint8(np.asarray(image), mode)
        return np.repeat(grey[:, :, None], 3, axis=2), 0.0
    if mode == "P" or mode == "1":
        palette_alpha = image.palette is not None and image.palette.mode == "RGBA"
        has_alpha = mode == "P" and ("transparency" in image.info or palette_alpha)
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
        if mode == "RGB":
            return np.asarray(image, dtype=np.uint8), 0.0
    elif mode in ("L", "RGBX"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8), 0.0
    if mode in _ALPHA_MODES:
        return _composited(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    if "transparency" in image.info:
        return _composited(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    try:
        converted = image.convert("RGB")
    except ValueError:
        raise ImageError(
            f"colour mode {mode} is not supported", code="unsupported_format"
        ) from None
    return np.asarray(converted, dtype=np.uint8), 0.0


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(image, source, target, outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            logger.info("embedded CMYK ICC profile unusable; using the plain conversion")
    return image.convert("RGB")


def _wide_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer or float grey -> uint8 by scaling, never by clipping."""
    if mode in _SIXTEEN_BIT_MODES:
        scaled = values.astype(np.float32) / 257.0
    elif mode == "I":
        # 16-bit files often arrive as mode I; 0..65535 is then the real range.
        top = float(values.max()) if values.size else 0.0
        low = float(values.min()) if values.size else 0.0
        if low >= 0 and top <= 255:
            scaled = values.astype(np.float32)
        elif low >= 0 and top <= 65535:
            scaled = values.astype(np.float32) / 257.0
        else:
            scaled = _stretch(values.astype(np.float64)) * 255.0
    else:  # "F": 0..1 when it fits, else stretched to its own range
        floats = np.nan_to_num(values.astype(np.float64))
        if floats.size and floats.min() >= 0 and floats.max() <= 1:
            scaled = floats * 255.0
        else:
            scaled = _stretch(floats) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, top = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if top <= low:
        return np.zeros_like(values)
    return (values - low) / (top - low)


def _composited(rgba: np.ndarray) -> tuple[np.ndarray, float]:
    """`rgba` on white, and the share of its pixels left mostly transparent (alpha < 128)."""
    return _composite_on_white(rgba), float(np.count_nonzero(rgba[:, :, 3] < 128)) / (
        rgba.shape[0] * rgba.shape[1])


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    colour = rgba[:, :, :3].astype(np.uint16)
    blended = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    return np.ascontiguousarray(blended.astype(np.uint8))
