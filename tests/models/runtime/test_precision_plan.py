"""How FP16 is obtained on TensorRT 10 versus 11 (decided without TensorRT installed)."""

from __future__ import annotations

import importlib.util

import pytest

from models.runtime.tensorrt_build import (
    Fp16Method,
    available_fp16_converters,
    fp32_fallback,
    major_version,
    plan_precision,
)


def test_fp32_is_fp32_everywhere() -> None:
    for major in (10, 11):
        plan = plan_precision("fp32", major, ("onnxconverter-common",))
        assert (plan.precision, plan.method) == ("fp32", Fp16Method.NONE)


def test_tensorrt_10_uses_the_builder_flag() -> None:
    plan = plan_precision("fp16", 10, ())
    assert (plan.precision, plan.method, plan.note) == ("fp16", Fp16Method.BUILDER_FLAG, "")


def test_tensorrt_11_converts_the_onnx() -> None:
    plan = plan_precision("fp16", 11, ("modelopt-autocast", "onnxconverter-common"))
    assert (plan.precision, plan.method) == ("fp16", Fp16Method.FP16_ONNX)
    assert plan.converters == ("modelopt-autocast", "onnxconverter-common")


def test_tensorrt_11_without_converters_builds_fp32_and_says_so() -> None:
    plan = plan_precision("fp16", 11, ())
    assert (plan.requested, plan.precision, plan.method) == ("fp16", "fp32", Fp16Method.NONE)
    assert "onnxconverter-common" in plan.note


def test_failed_fp16_build_plan() -> None:
    plan = fp32_fallback(plan_precision("fp16", 10, ()), "parser said no")
    assert plan.precision == "fp32" and "parser said no" in plan.note


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="int8"):
        plan_precision("int8", 10, ())


def test_converters_need_onnx() -> None:
    found = available_fp16_converters()
    if importlib.util.find_spec("onnx") is None:
        assert found == ()
    else:
        assert set(found) <= {"modelopt-autocast", "onnxconverter-common"}


def test_major_version() -> None:
    assert major_version("10.13.3.9") == 10
    assert major_version("11.1.0.106") == 11
