"""Preprocess: decode and measure one image on a CPU replica (wraps models.Preprocessor).

Decoding is the one step whose memory an upload decides: each image's cost is read from its header
and held against the replica's decode budget while the image is decoded and measured (or fixed),
so however many images arrive at once, the replica holds at most the budget's worth. An image
that finds no room within `decode_wait_s` is answered `decode_busy` (that image only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import ray
from ray import serve
from ray.serve.metrics import Counter, Gauge, Histogram

from curator.contracts.errors import ImageError
from curator.core.measured import FixedFile, MeasuredImage, fix_locally, measure_locally
from curator.core.pipeline import build_preprocessor
from deployments.batching import STAGE_LOGGING
from models.decode import DecodeLimits, read_header
from models.decode_budget import DecodeBudget, DecodeBusy, default_decode_budget
from models.heap import DECODE_MMAP_THRESHOLD_BYTES, return_large_buffers

_LATENCY_BOUNDARIES_MS = [2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0]


def replica_memory() -> float | None:
    """The memory Ray reserved for this replica (`ray_actor_options.memory`), if any."""
    if not ray.is_initialized():  # the class built directly (tests): asking would start Ray
        return None
    try:
        return ray.get_runtime_context().get_assigned_resources().get("memory") or None
    except Exception:  # outside a Ray worker (tests that build the class directly)
        return None


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8,
                  logging_config=STAGE_LOGGING)
class Preprocess:
    def __init__(
        self, max_image_bytes: int, max_image_pixels: int, emit_model_inputs: bool = True,
        decode_memory_bytes: int | None = None, decode_wait_s: float | None = None,
    ) -> None:
        # Full-size decodes go back to the OS when freed, so RSS does not ratchet up with the
        # largest photo each serving thread has seen (models/heap.py).
        return_large_buffers(DECODE_MMAP_THRESHOLD_BYTES)
        self._emit_model_inputs = emit_model_inputs
        self._decode_wait_s = decode_wait_s
        self._budget = DecodeBudget(decode_memory_bytes or default_decode_budget(replica_memory()))
        self._preprocessor = build_preprocessor(
            DecodeLimits(max_bytes=max_image_bytes, max_pixels=max_image_pixels,
                         max_decode_bytes=self._budget.capacity)
        )
        self._latency = Histogram(
            "curator_preprocess_ms",
            description="Time to decode and measure one image, ms",
            boundaries=_LATENCY_BOUNDARIES_MS,
        )
        self._failures = Counter(
            "curator_preprocess_image_errors",
            description="Images that could not be decoded, by error code",
            tag_keys=("code",),
        )
        self._decoding = Gauge(
            "curator_decode_memory_reserved_bytes",
            description="Decoding working memory this Preprocess replica holds for images now",
        )
        self._decoding.set(0)  # exported from the start, not only once an image has come
        self._budget_waits = Counter(
            "curator_decode_budget_waits",
            description="Images that waited for room in the replica's decode budget",
        )

    def run(self, data: bytes, image_id: str) -> MeasuredImage:
        # Sync on purpose: Serve runs sync methods in a thread pool, and decoding/measuring is
        # numpy/OpenCV/Pillow work that releases the GIL for most of its time.
        started = time.perf_counter()
        # The compact model inputs travel on to the model stages, never to the client; with no
        # model stage after this one, they are not sent at all.
        try:
            with self._decoding_room(data):
                measured = measure_locally(
                    data, image_id, self._preprocessor, keep_model_inputs=self._emit_model_inputs
                )
        except DecodeBusy as busy:
            busy.image_id = image_id
            measured = MeasuredImage(image_id=image_id, error=busy.to_dict())
        if measured.error is not None:
            self._failures.inc(tags={"code": measured.error["code"]})
        else:
            self._latency.observe((time.perf_counter() - started) * 1000)
        return measured

    def apply_fixes(self, data: bytes, fixes: list[tuple[str, dict]]) -> FixedFile:
        """The fixes a rule asked for (rules.fixes): decode, fix, encode as sRGB JPEG. On this
        CPU replica rather than the ingress, whose event loop must not do pixel work."""
        try:
            with self._decoding_room(data):
                fixed = fix_locally(data, fixes, self._preprocessor)
        except DecodeBusy as busy:
            fixed = FixedFile(error=busy.to_dict())
        if fixed.error is not None:
            self._failures.inc(tags={"code": fixed.error["code"]})
        return fixed

    def decode_budget(self) -> dict[str, int]:
        """The replica's decode budget: capacity, reserved now, the most reserved at once, waits."""
        budget = self._budget
        return {"capacity": budget.capacity, "in_use": budget.in_use, "peak": budget.peak,
                "waits": budget.waits, "timeouts": budget.timeouts}

    @contextmanager
    def _decoding_room(self, data: bytes) -> Iterator[None]:
        """Room in the budget for the image's decoding, from its header. A header the decoder
        refuses costs nothing: decoding stops at the same check, before any pixel."""
        try:
            cost = read_header(data, self._preprocessor.decode_limits).decode_bytes
        except ImageError:
            cost = 0
        with self._budget.reserve(cost, self._decode_wait_s) as waited:
            if waited:
                self._budget_waits.inc()
            self._decoding.set(self._budget.in_use)
            yield
        self._decoding.set(self._budget.in_use)
