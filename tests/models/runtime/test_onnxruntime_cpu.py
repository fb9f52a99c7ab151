"""ONNX Runtime on the CPU runs both ONNX artifacts: the runtime CI and this machine use."""

from __future__ import annotations

import numpy as np
import pytest

from models.artifacts import NUDITY_DETECTOR, TEXT_DETECTOR
from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
from tests.models.runtime.inputs import people_batch, text_batch


@pytest.fixture(scope="module")
def text_runtime() -> OnnxRuntimeCpu:
    return OnnxRuntimeCpu(TEXT_DETECTOR.name, TEXT_DETECTOR.path(), intra_op_threads=2)


@pytest.fixture(scope="module")
def people_runtime() -> OnnxRuntimeCpu:
    return OnnxRuntimeCpu(NUDITY_DETECTOR.name, NUDITY_DETECTOR.path(), intra_op_threads=2)


@pytest.mark.parametrize(("height", "width"), [(96, 128), (256, 320)], ids=["small", "wide"])
def test_text_detector_maps_every_pixel(
    text_runtime: OnnxRuntimeCpu, height: int, width: int
) -> None:
    outputs = text_runtime.run({"x": text_batch(3, height, width)})
    (probability,) = outputs.values()
    assert probability.shape == (3, 1, height, width)
    assert probability.dtype == np.float32
    assert probability.min() >= 0.0 and probability.max() <= 1.0
    assert (probability > 0.3).any(), "rendered overlay text should light up the map"


def test_people_detector_answers_per_anchor(people_runtime: OnnxRuntimeCpu) -> None:
    outputs = people_runtime.run({"images": people_batch(2)})
    (predictions,) = outputs.values()
    # 4 box coordinates + 18 class scores, over 40² + 20² + 10² anchors of a 320 canvas.
    assert predictions.shape == (2, 22, 2100)
    assert predictions.dtype == np.float32
    scores = predictions[:, 4:]
    assert scores.min() >= 0.0 and scores.max() <= 1.0


@pytest.mark.parametrize("which", ["text", "people"])
def test_runs_are_deterministic_and_batch_independent(
    which: str, text_runtime: OnnxRuntimeCpu, people_runtime: OnnxRuntimeCpu
) -> None:
    runtime, name, batch = (
        (text_runtime, "x", text_batch(3, 96, 128)) if which == "text"
        else (people_runtime, "images", people_batch(3))
    )
    first = runtime.run({name: batch})
    second = runtime.run({name: batch})
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    # An image's answer must not depend on its batch mates (detectors rely on it).
    alone = runtime.run({name: batch[1:2]})
    for key in first:
        np.testing.assert_allclose(alone[key][0], first[key][1], rtol=1e-4, atol=1e-4)


def test_info_names_the_cpu_provider(text_runtime: OnnxRuntimeCpu) -> None:
    info = text_runtime.info
    assert (info.model, info.runtime, info.device, info.precision) == (
        TEXT_DETECTOR.name, "onnxruntime", "cpu", "fp32")
    assert "CPUExecutionProvider" in info.detail


def test_memory_stops_growing_once_every_batch_size_has_run() -> None:
    """The replicas' RSS steps up when a batch size runs for the first time and then stays: ONNX
    Runtime's CPU arena keeps what it reserved for the largest activations seen (issue 13's
    soak). Bounded by the largest batch, not a leak: repeating the same batch sizes reserves
    nothing more."""
    psutil = pytest.importorskip("psutil")
    runtime = OnnxRuntimeCpu(NUDITY_DETECTOR.name, NUDITY_DETECTOR.path(), intra_op_threads=1)
    batches = [people_batch(size) for size in (1, 2, 4, 8, 3)]

    def cycle() -> float:
        for batch in batches:
            runtime.run({"images": batch})
        return float(psutil.Process().memory_info().rss) / 2**20

    first = cycle()
    settled = cycle()
    later = [cycle() for _ in range(4)]
    assert max(later) <= settled + 8.0, (first, settled, later)
