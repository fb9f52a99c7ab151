"""curator_model_runtime: a series per model, 1 for the runtime in force, 0 for a replaced one."""

from __future__ import annotations

from typing import Any

from deployments.runtime_metric import RuntimeChoiceMetric
from models.runtime.base import RuntimeInfo

ORT = RuntimeInfo("ppocr-det", "onnxruntime", "cuda:0 (NVIDIA L4)", "fp32")
TRT = RuntimeInfo("ppocr-det", "tensorrt", "cuda:0 (NVIDIA L4)", "fp16")
PEOPLE = RuntimeInfo("nudenet-320n", "onnxruntime", "cpu", "fp32")


def recorded(metric: RuntimeChoiceMetric) -> list[tuple[float, dict[str, str]]]:
    """Every value the real Ray gauge is given, in order."""
    calls: list[tuple[float, dict[str, str]]] = []
    gauge = metric._gauge
    real_set = gauge.set

    def set_and_record(value: float, tags: dict[str, str], **kwargs: Any) -> None:
        calls.append((value, dict(tags)))
        real_set(value, tags=tags, **kwargs)

    gauge.set = set_and_record  # type: ignore[method-assign,assignment]
    return calls


def test_each_model_is_exported_once_with_its_choice() -> None:
    metric = RuntimeChoiceMetric(refresh_interval_s=None)
    calls = recorded(metric)
    metric.update({"text": ORT, "people": PEOPLE})
    metric.update({"text": ORT, "people": PEOPLE})  # unchanged: nothing recorded again
    assert calls == [
        (1, {"model": "ppocr-det", "runtime": "onnxruntime", "device": "cuda:0 (NVIDIA L4)",
             "precision": "fp32"}),
        (1, {"model": "nudenet-320n", "runtime": "onnxruntime", "device": "cpu",
             "precision": "fp32"}),
    ]


def test_a_switch_zeroes_the_replaced_choice() -> None:
    # A deferred TensorRT build finishing: ONNX Runtime answered until then.
    metric = RuntimeChoiceMetric(refresh_interval_s=None)
    metric.update({"text": ORT})
    calls = recorded(metric)
    metric.update({"text": TRT})
    assert [(value, tags["runtime"], tags["precision"]) for value, tags in calls] == [
        (0, "onnxruntime", "fp32"), (1, "tensorrt", "fp16")]
    assert metric.current["text"]["runtime"] == "tensorrt"


def test_refresh_sets_the_choices_in_force_again() -> None:
    # Ray's metrics agent forgets a gauge series not set for a while; refresh keeps it alive.
    metric = RuntimeChoiceMetric(refresh_interval_s=None)
    metric.update({"text": ORT})
    metric.update({"text": TRT})
    calls = recorded(metric)
    metric.refresh()
    assert [(value, tags["runtime"]) for value, tags in calls] == [(1, "tensorrt")]
