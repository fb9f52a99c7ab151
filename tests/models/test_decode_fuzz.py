"""The decoder against hostile files: random bytes, and real image files of every accepted
format with their headers and data mutated. Whatever the bytes, `decode_image` answers with an
image or an `ImageError` with one of its stable codes, never another exception.
Property-based (hypothesis); inputs that once escaped are kept as explicit examples."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from curator.contracts.errors import ImageError
from models.decode import DecodeLimits, decode_image

CODES = {"empty_image", "image_too_large", "unsupported_format", "too_many_pixels",
         "corrupt_image"}
# A small pixel budget: a mutated header may claim any size, and the test must stay cheap.
LIMITS = DecodeLimits(max_pixels=200_000, max_bytes=1 << 20)
FUZZ = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@cache
def seeds() -> dict[str, bytes]:
    """Small real files of each accepted format and a few modes."""
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    files: dict[str, bytes] = {}

    def save(name: str, image: Image.Image, fmt: str, **options: object) -> None:
        out = io.BytesIO()
        image.save(out, fmt, **options)
        files[name] = out.getvalue()

    save("jpeg", rgb, "JPEG", quality=80)
    save("jpeg-progressive", rgb, "JPEG", progressive=True)
    save("jpeg-cmyk", rgb.convert("CMYK"), "JPEG")
    save("png", rgb, "PNG")
    save("png-rgba", rgb.convert("RGBA"), "PNG")
    save("png-16bit", Image.fromarray(rng.integers(0, 65535, (24, 32), dtype=np.uint16)), "PNG")
    save("png-palette", rgb.convert("P"), "PNG", transparency=0)
    save("gif", rgb.convert("P"), "GIF")
    save("tiff", rgb, "TIFF", compression="tiff_lzw")
    save("webp", rgb, "WEBP", quality=70)
    return files


def check(data: bytes) -> None:
    try:
        decoded = decode_image(data, LIMITS)
    except ImageError as error:
        assert error.code in CODES, error.code
        return
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.ndim == 3
    assert decoded.width * decoded.height <= LIMITS.max_pixels


@FUZZ
@given(st.binary(max_size=2048))
@example(b"")
@example(b"\xff\xd8\xff")
@example(b"\x89PNG\r\n\x1a\n")
@example(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
@example(b"II*\x00\x08\x00\x00\x00")
def test_random_bytes_are_an_image_error(data: bytes) -> None:
    check(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(sorted(seeds())))
    data = bytearray(seeds()[name])
    # Mostly within the header, where sizes, offsets and counts live.
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["set", "flip", "insert", "delete", "truncate", "max"]))
        if not data:
            break
        reach = min(len(data), draw(st.sampled_from([64, 256, len(data)])))
        at = draw(st.integers(0, reach - 1))
        if kind == "set":
            data[at] = draw(st.integers(0, 255))
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
        else:  # a size or count field at its maximum
            data[at:at + 4] = b"\xff\xff\xff\xff"
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_real_files_are_an_image_or_an_image_error(data: bytes) -> None:
    check(data)


def test_the_seed_files_decode() -> None:
    for name, data in seeds().items():
        decoded = decode_image(data, LIMITS)
        assert (decoded.width, decoded.height) == (32, 24), name
