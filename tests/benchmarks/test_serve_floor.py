"""The Serve-floor benchmark: its three shapes answer through a real Serve proxy, and the report
names the host and every shape."""

from __future__ import annotations

import pytest
import ray

from benchmarks.serve_floor import SHAPES, measure, render


@pytest.mark.integration
def test_every_shape_answers_through_serve_and_ray_is_left_shut_down() -> None:
    result = measure(requests_per_shape=3, images=2)
    assert not ray.is_initialized()
    assert result["requests_per_shape"] == 3 and result["images"] == 2
    for shape in SHAPES:
        figures = result["latency_ms"][shape]
        assert figures["p50"] is not None and 0 < figures["p50"] <= figures["max"]
    report = render(result)
    assert result["machine"]["cpu_model"] in report
    assert all(f"\n{shape} " in report for shape in SHAPES)
