"""Subnormal weights are zeroed before ONNX Runtime loads a model; nothing it computes changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from models.artifacts import OBJECT_DETECTOR, TEXT_DETECTOR
from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
from models.runtime.subnormals import flush_subnormal_weights, loadable_model
from tests.models.runtime.inputs import text_batch

SUBNORMAL = np.float32(1e-40)  # under float32's smallest normal, 1.18e-38


def _session(source: str | bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def _model_with_subnormals(path: Path) -> None:
    """y = (x @ W + c) with subnormals in the initializer W and in the Constant c."""
    weights = np.array([[1.0, SUBNORMAL], [-SUBNORMAL, 0.5], [2.0, -3.0]], dtype=np.float32)
    bias = np.array([SUBNORMAL, 0.25], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(bias, "c")),
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "c"], ["y"]),
        ],
        "subnormal_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_subnormal_weights_and_constants_are_zeroed_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    _model_with_subnormals(path)
    model = onnx.load(str(path))
    assert flush_subnormal_weights(model) == 3
    weights = numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_array_equal(weights, [[1.0, 0.0], [0.0, 0.5], [2.0, -3.0]])
    bias = numpy_helper.to_array(model.graph.node[0].attribute[0].t)
    np.testing.assert_array_equal(bias, [0.0, 0.25])
    assert flush_subnormal_weights(model) == 0  # nothing left to zero

    loadable = loadable_model(path)
    assert loadable.flushed == 3 and isinstance(loadable.source, bytes)
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    (before,) = _session(str(path)).run(None, {"x": x})
    (after,) = _session(loadable.source).run(None, {"x": x})
    np.testing.assert_array_equal(before, after)


def test_a_model_without_subnormals_loads_from_its_file() -> None:
    loadable = loadable_model(OBJECT_DETECTOR.path())
    assert loadable == type(loadable)(str(OBJECT_DETECTOR.path()), 0)
    assert loadable.note == ""


def test_the_text_detector_loses_its_subnormals_and_none_of_its_answers() -> None:
    """The shipped PP-OCRv6 file (sha256-pinned) holds 255,958 subnormal weights; the copy ONNX
    Runtime runs holds none and maps rendered text to the same probabilities, bit for bit."""
    loadable = loadable_model(TEXT_DETECTOR.path())
    assert loadable.flushed == 255_958
    zeroed = onnx.load_from_string(loadable.source)
    assert flush_subnormal_weights(zeroed) == 0
    batch = text_batch(2, 160, 224)
    (shipped,) = _session(str(TEXT_DETECTOR.path())).run(None, {"x": batch})
    (flushed,) = _session(loadable.source).run(None, {"x": batch})
    assert (shipped > 0.3).any()  # the text lights up: a real comparison, not of two blanks
    np.testing.assert_array_equal(shipped, flushed)


def test_the_cpu_runtime_says_what_it_zeroed() -> None:
    runtime = OnnxRuntimeCpu(TEXT_DETECTOR.name, TEXT_DETECTOR.path(), intra_op_threads=1)
    assert "255958 subnormal weights zeroed" in runtime.info.detail
