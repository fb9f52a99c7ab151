"""The headroom figures: multiply-accumulates counted from ONNX graphs, the GEMM ceilings, and the
rates read against them."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks.roofline import gemm_rates, headroom, multiply_accumulates, needed_rate


def _model(nodes: list, weights: dict[str, np.ndarray], input_shape: list, output: str) -> bytes:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(array, name) for name, array in weights.items()])
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                 .SerializeToString())


def test_convolutions_count_every_output_pixels_products() -> None:
    weights = {
        "w": np.zeros((8, 3, 3, 3), np.float32),  # 3 -> 8, 3x3, stride 2, padded: 16x16 -> 8x8
        "d": np.zeros((8, 1, 5, 5), np.float32),  # depthwise 5x5 over 8 channels
        "t": np.zeros((8, 4, 2, 2), np.float32),  # transposed 2x2 stride 2: 8x8 -> 16x16
    }
    model = _model([
        helper.make_node("Conv", ["x", "w"], ["a"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "d"], ["b"], group=8, pads=[2, 2, 2, 2]),
        helper.make_node("ConvTranspose", ["b", "t"], ["y"], strides=[2, 2]),
    ], weights, ["N", 3, "H", "W"], "y")
    conv = 8 * 8 * (8 * 3 * 3 * 3)
    depthwise = 8 * 8 * (8 * 1 * 5 * 5)
    transposed = 8 * 8 * (8 * 4 * 2 * 2)  # each input pixel scatters C_in x C_out x 2 x 2
    assert multiply_accumulates(model, (1, 3, 16, 16)) == conv + depthwise + transposed
    # The same graph at twice the side: four times the work; a batch of two: twice.
    assert multiply_accumulates(model, (1, 3, 32, 32)) == 4 * (conv + depthwise + transposed)
    assert multiply_accumulates(model, (2, 3, 16, 16)) == 2 * (conv + depthwise + transposed)


def test_matrix_products_count_rows_times_columns_times_the_inner_side() -> None:
    model = _model([helper.make_node("MatMul", ["x", "m"], ["y"])],
                   {"m": np.zeros((64, 10), np.float32)}, ["N", 64], "y")
    assert multiply_accumulates(model, (5, 64)) == 5 * 10 * 64


def test_shipped_text_detectors_work_scales_with_the_canvas_area() -> None:
    from models.artifacts import TEXT_DETECTOR, int8_variant

    at_640 = multiply_accumulates(TEXT_DETECTOR.path(), (1, 3, 640, 640))
    at_320 = multiply_accumulates(TEXT_DETECTOR.path(), (1, 3, 320, 320))
    assert 4e9 < at_640 < 5e9  # PP-OCRv6 det small: 4.33 G MACs at 640 x 640
    assert at_640 == pytest.approx(4 * at_320, rel=1e-3)  # fully convolutional
    int8 = int8_variant(TEXT_DETECTOR)
    if int8 is not None:  # its QDQ convolutions do the same products on dequantised weights
        assert multiply_accumulates(int8.path(), (1, 3, 640, 640)) == at_640


def test_gemm_ceilings_are_measured_per_precision() -> None:
    from models.runtime.openvino_cpu import compiles_bf16
    from models.runtime.select import openvino_available

    rates = gemm_rates(min_calls=2, min_s=0.0)
    expected = {"fp32", "int8"} | ({"bf16"} if openvino_available() and compiles_bf16() else set())
    assert set(rates) == expected
    assert all(np.isfinite(rate) and rate > 0 for rate in rates.values())


def test_headroom_and_the_rate_a_target_needs() -> None:
    figures = headroom(macs=4_000_000_000, cpu_ms=100.0, ceiling=50.0)  # 40 G/s of 50
    assert figures == pytest.approx({"gmacs_per_s": 40.0, "of_ceiling": 0.8})
    # 3x cheaper than 120 ms is 40 ms: 4 G MACs in 40 ms is 100 G/s.
    assert needed_rate(4_000_000_000, reference_cpu_ms=120.0, speedup=3.0) == pytest.approx(100.0)
