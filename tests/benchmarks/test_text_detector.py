"""The text-detector benchmark's OpenVINO bf16 variant: listed where OpenVINO is installed, timed
through the service's own `OpenVinoCpu`, and its precision reported as OpenVINO compiled it."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.text_detector import _SessionRuntime, time_variant, variants
from models.runtime.select import openvino_available

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")


@needs_openvino
def test_openvino_bf16_variant_is_listed() -> None:
    found = {variant.name: variant for variant in variants()}
    variant = found["openvino-bf16-640"]
    assert variant.runtime == "openvino"
    assert variant.precision == "bf16"
    assert variant.canvas_px == 640
    assert found["fp32-640"].artifact == variant.artifact  # the FP32 file, run in bf16


@needs_openvino
def test_openvino_variant_runs_and_reports_what_compiled() -> None:
    from models.runtime.openvino_cpu import bf16_supported

    variant = next(v for v in variants() if v.runtime == "openvino")
    runtime = _SessionRuntime(variant, threads=1)
    assert runtime.info.runtime == "openvino"
    assert runtime.info.precision == ("bf16" if bf16_supported() else "fp32")
    inputs = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    timing = time_variant(variant, threads=1, batch=1, inputs=inputs, min_calls=2, min_s=0.0)
    assert timing.calls >= 2
    assert timing.precision == runtime.info.precision
    assert timing.cpu_ms["p50"] > 0
