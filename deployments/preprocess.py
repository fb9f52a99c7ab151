"""Preprocess: decode and measure one image on a CPU replica (wraps models.Preprocessor)."""

from __future__ import annotations

import time

from ray import serve
from ray.serve.metrics import Counter, Histogram

from curator.assessment import FixedFile, MeasuredImage, fix_locally, measure_locally
from models.decode import DecodeLimits
from models.preprocess import Preprocessor

_LATENCY_BOUNDARIES_MS = [2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0]


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8)
class Preprocess:
    def __init__(
        self, max_image_bytes: int, max_image_pixels: int, emit_model_inputs: bool = True
    ) -> None:
        self._emit_model_inputs = emit_model_inputs
        self._preprocessor = Preprocessor(
            decode_limits=DecodeLimits(max_bytes=max_image_bytes, max_pixels=max_image_pixels)
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

    def run(self, data: bytes, image_id: str) -> MeasuredImage:
        # Sync on purpose: Serve runs sync methods in a thread pool, and decoding/measuring is
        # numpy/OpenCV/Pillow work that releases the GIL for most of its time.
        started = time.perf_counter()
        # The compact model inputs travel on to the model stages, never to the client; with no
        # model stage after this one, they are not sent at all.
        measured = measure_locally(
            data, image_id, self._preprocessor, keep_model_inputs=self._emit_model_inputs
        )
        if measured.error is not None:
            self._failures.inc(tags={"code": measured.error["code"]})
        else:
            self._latency.observe((time.perf_counter() - started) * 1000)
        return measured

    def apply_fixes(self, data: bytes, fixes: list[tuple[str, dict]]) -> FixedFile:
        """The fixes a rule asked for (rules.fixes): decode, fix, encode as sRGB JPEG. On this
        CPU replica rather than the ingress, whose event loop must not do pixel work."""
        fixed = fix_locally(data, fixes, self._preprocessor)
        if fixed.error is not None:
            self._failures.inc(tags={"code": fixed.error["code"]})
        return fixed
