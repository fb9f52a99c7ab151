"""The decode memory budget (issue 13): an image's decoding cost read from its header, the budget
a replica decodes within, and the listing check that refuses a listing of bombs before any pixel
is decoded. The bytes-per-pixel table is measured again here, in a fresh process per mode."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curator.contracts.errors import CuratorError, ImageError
from curator.core.image_jobs import check_decode_memory
from curator.core.settings import InputLimits
from models.decode import DECODE_BYTES_PER_PIXEL, DecodeLimits, decode_image, read_header
from models.decode_budget import (
    MAX_DEFAULT_DECODE_BYTES,
    MIN_DEFAULT_DECODE_BYTES,
    DecodeBudget,
    DecodeBusy,
    default_decode_budget,
)
from tests.support import synthetic

MIB = 2**20
ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_png_declaring_a_huge_canvas_is_costed_from_its_header() -> None:
    bomb = synthetic.bomb_png(7000, 7000)  # 49 MP of 16-bit grey in ~100 KB
    assert len(bomb) < 200_000
    header = read_header(bomb)
    assert (header.format, header.mode, header.width, header.height) == ("PNG", "I;16", 7000, 7000)
    assert header.decode_bytes == 49_000_000 * DECODE_BYTES_PER_PIXEL["I;16"]  # ~935 MiB


def test_the_cost_depends_on_the_colour_mode_not_only_on_the_pixel_count() -> None:
    grey = read_header(synthetic.bomb_png(1000, 1000, bit_depth=8, colour_type=0))
    rgba = read_header(synthetic.bomb_png(1000, 1000, bit_depth=8, colour_type=6))
    assert (grey.mode, rgba.mode) == ("L", "RGBA")
    assert rgba.decode_bytes > 2 * grey.decode_bytes


def test_an_image_costing_more_than_the_budget_is_refused_before_decoding() -> None:
    limits = DecodeLimits(max_decode_bytes=256 * MIB)
    bomb = synthetic.bomb_png(4000, 4000)  # 16 MP, under the 50 MP limit; 16-bit: ~305 MiB
    for read in (read_header, decode_image):
        with pytest.raises(ImageError) as caught:
            read(bomb, limits)
        assert caught.value.code == "too_many_pixels"
        assert "MiB a replica decodes at once" in caught.value.message
    # The same pixel count in a cheaper mode fits.
    jpeg = io.BytesIO()
    Image.new("RGB", (4000, 4000), "white").save(jpeg, "JPEG")
    assert decode_image(jpeg.getvalue(), limits).rgb.shape == (4000, 4000, 3)


def test_a_listing_of_bombs_is_refused_whole_with_413() -> None:
    limits = DecodeLimits(max_decode_bytes=512 * MIB)
    bomb = synthetic.bomb_png(3000, 3000)  # 9 MP 16-bit: ~172 MiB each, fine alone
    check_decode_memory([bomb, bomb], limits)
    with pytest.raises(CuratorError) as caught:
        check_decode_memory([bomb, bomb, bomb, None, b"not an image"], limits)
    error = caught.value
    assert (error.status, error.code, error.field) == (413, "listing_too_large", "images")
    assert "3 images" in error.message and "515 MiB" in error.message


def test_images_refused_alone_do_not_count_against_the_listing() -> None:
    limits = DecodeLimits(max_decode_bytes=256 * MIB)
    huge = synthetic.bomb_png(4000, 4000)  # over the budget alone: its own too_many_pixels
    small = synthetic.bomb_png(1000, 1000)
    check_decode_memory([huge, huge, huge, small], limits)


def test_the_default_budget_is_a_quarter_of_the_replica_memory_within_bounds() -> None:
    assert default_decode_budget(8 * 2**30) == 2 * 2**30
    assert default_decode_budget(2 * 2**30) == MIN_DEFAULT_DECODE_BYTES
    assert default_decode_budget(512 * 2**30) == MAX_DEFAULT_DECODE_BYTES
    host = default_decode_budget()
    assert MIN_DEFAULT_DECODE_BYTES <= host <= MAX_DEFAULT_DECODE_BYTES
    assert InputLimits().decode_limits().max_decode_bytes == host
    assert InputLimits(decode_memory_bytes=300 * MIB).decode_limits().max_decode_bytes == 300 * MIB


def test_the_budget_never_holds_more_than_its_capacity_and_serves_in_order() -> None:
    budget = DecodeBudget(100)
    held = []
    order = []
    lock = threading.Lock()

    def decode(name: str, cost: int) -> None:
        with budget.reserve(cost):
            with lock:
                order.append(name)
                held.append(budget.in_use)
            time.sleep(0.05)

    first = threading.Thread(target=decode, args=("first", 70))
    first.start()
    time.sleep(0.01)
    # "big" cannot fit beside "first"; "small" could, but waits its turn behind "big".
    late = [threading.Thread(target=decode, args=(name, cost))
            for name, cost in (("big", 60), ("small", 10))]
    for thread in late:
        thread.start()
        time.sleep(0.01)
    for thread in (first, *late):
        thread.join(5)
    assert order == ["first", "big", "small"]
    assert max(held) <= 100 and budget.peak <= 100
    assert budget.in_use == 0 and budget.waits == 2
    with pytest.raises(ValueError), budget.reserve(101):
        pass


_PEAK_SCRIPT = """
import io, json, sys
from pathlib import Path
from PIL import Image
from models.decode import DecodeLimits, read_header
from models.preprocess import Preprocessor

data = Path(sys.argv[1]).read_bytes()
limits = DecodeLimits(max_pixels=10**9, max_bytes=2**31)
preprocessor = Preprocessor(limits)
warm = io.BytesIO(); Image.new("RGB", (800, 600), "white").save(warm, "JPEG")
preprocessor.run(warm.getvalue())
header = read_header(data, limits)
Path("/proc/self/clear_refs").write_text("5")  # the peak RSS (VmHWM) starts again from here


def status_kib(name):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])


before = status_kib("VmRSS")
preprocessor.run(data)
grown = (status_kib("VmHWM") - before) * 1024
print(json.dumps({"mode": header.mode, "grown": grown, "pixels": header.pixels}))
"""


def _image(kind: str, width: int, height: int) -> bytes:
    out = io.BytesIO()
    if kind in ("jpeg", "cmyk"):
        pixels = np.full((height, width, 3), 255, np.uint8)
        pixels[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = (40, 90, 160)
        image = Image.fromarray(pixels)
        (image.convert("CMYK") if kind == "cmyk" else image).save(out, "JPEG", quality=90)
    elif kind == "float":
        Image.fromarray(np.zeros((height, width), np.float32), "F").save(
            out, "TIFF", compression="tiff_deflate")
    else:
        depth, colour = {"grey8": (8, 0), "grey16": (16, 0), "rgba": (8, 6)}[kind]
        return synthetic.bomb_png(width, height, bit_depth=depth, colour_type=colour)
    return out.getvalue()


def _peak(image: Path) -> dict[str, int | str]:
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(image)], cwd=ROOT,
                          check=True, capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["jpeg", "grey8", "cmyk", "grey16", "rgba", "float"])
def test_the_cost_covers_the_memory_decoding_and_measuring_really_take(
    kind: str, tmp_path: Path
) -> None:
    """What each further pixel costs `Preprocessor.run` at its peak, from fresh processes that
    run a 3 MP and a 12 MP image of the mode (the difference of their peak RSS growth over the
    difference of their pixels: what a run touches whatever the size cancels out), stays
    within the bytes per pixel the budget counts."""
    peaks = []
    for width, height in ((2000, 1500), (4000, 3000)):
        image = tmp_path / f"{kind}-{width}"
        image.write_bytes(_image(kind, width, height))
        peaks.append(_peak(image))
    small, large = peaks
    per_pixel = (int(large["grown"]) - int(small["grown"])) / (
        int(large["pixels"]) - int(small["pixels"]))
    counted = DECODE_BYTES_PER_PIXEL[str(large["mode"])]
    print(f"{kind} ({large['mode']}): {per_pixel:.1f} B/px measured, {counted} counted")
    assert 0 < per_pixel <= counted


def test_a_wait_for_room_gives_up_in_time_and_leaves_the_queue() -> None:
    """An image that finds no room within its wait is `decode_busy`; it leaves its place in the
    queue, so the one behind it is served as soon as room comes."""
    budget = DecodeBudget(100)
    room = threading.Event()
    served: list[str] = []

    def hold() -> None:
        with budget.reserve(90):
            room.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    while budget.in_use == 0:
        time.sleep(0.001)
    with pytest.raises(DecodeBusy) as busy, budget.reserve(50, timeout_s=0.05):
        pass
    assert (busy.value.code, busy.value.status) == ("decode_busy", 503)
    assert budget.timeouts == 1

    def small() -> None:
        with budget.reserve(10, timeout_s=5):
            served.append("small")

    behind = threading.Thread(target=small)
    behind.start()
    behind.join(5)
    assert served == ["small"]  # fits beside the holder, and nobody stale is ahead of it
    room.set()
    holder.join(5)
    assert budget.in_use == 0


def test_a_busy_replica_answers_the_image_decode_busy() -> None:
    """The Preprocess replica's own class (outside Serve) with a budget another image holds: a
    second image that does not fit in time gets its own error, and the replica stays usable."""
    from deployments.preprocess import Preprocess

    replica = Preprocess.func_or_class(
        max_image_bytes=25 * MIB, max_image_pixels=50_000_000, emit_model_inputs=False,
        decode_memory_bytes=16 * MIB, decode_wait_s=0.05)
    photo = synthetic.to_jpeg_bytes(synthetic.render_product((1000, 1000)))
    assert read_header(photo, DecodeLimits()).decode_bytes > 8 * MIB  # two do not fit at once
    released = threading.Event()

    def hold() -> None:
        with replica._budget.reserve(12 * MIB):
            released.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    while replica._budget.in_use == 0:
        time.sleep(0.001)
    answer = replica.run(photo, "late")
    assert answer.error is not None and answer.error["code"] == "decode_busy"
    assert answer.error["image_id"] == "late"
    assert replica.decode_budget()["timeouts"] == 1
    released.set()
    holder.join(5)
    assert replica.run(photo, "later").error is None
