"""Batch mode's decode budget (issue 13): the decoding actors share the host's default budget,
and an image over an actor's share is that image's error, without Ray."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from curator.core.settings import InputLimits, UrlFetchSettings
from graphs.batch_options import MIN_ACTOR_DECODE_BYTES, BatchOptions
from graphs.batch_stages import ReadImages, measured_in
from tests.support import synthetic

MIB = 2**20


def test_the_decoding_actors_share_the_default_budget() -> None:
    limits = InputLimits()
    options = BatchOptions(read_actors=3, listing_actors=1)
    shared = options.actor_limits(limits)
    assert shared.decode_memory_bytes == limits.decode_budget() // 4
    assert shared.model_copy(update={"decode_memory_bytes": None}) == limits  # nothing else


def test_an_explicit_budget_is_per_actor_and_a_share_has_a_floor() -> None:
    explicit = InputLimits(decode_memory_bytes=64 * MIB)
    assert BatchOptions(read_actors=8).actor_limits(explicit) is explicit
    many = BatchOptions(read_actors=100_000).actor_limits(InputLimits())
    assert many.decode_memory_bytes == MIN_ACTOR_DECODE_BYTES


def test_an_image_over_the_actors_budget_fails_alone(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(synthetic.bomb_png(4000, 4000))  # 16 MP of 16-bit grey: ~305 MiB to decode
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(synthetic.to_jpeg_bytes(synthetic.render_product(seed=1)))
    limits = BatchOptions(read_actors=1, listing_actors=1).actor_limits(
        InputLimits(decode_memory_bytes=256 * MIB))
    batch = pa.table({"image_id": ["bomb", "photo"], "path": [str(bomb), str(photo)],
                      "url": [None, None]})
    bomb_measured, photo_measured = measured_in(ReadImages(limits, UrlFetchSettings())(batch))
    assert bomb_measured.error is not None and bomb_measured.error["code"] == "too_many_pixels"
    assert "MiB a replica decodes at once" in bomb_measured.error["message"]
    assert photo_measured.error is None
