"""What tools/quantize_detectors.py keeps in FP32: each detector's head, found by node names that
must still exist in the shipped FP32 files (a re-exported model would silently quantise its
head otherwise). No calibration runs here."""

from __future__ import annotations

import re

import onnx
import pytest
from onnx import TensorProto, helper

from tools.quantize_common import downstream
from tools.quantize_detectors import TARGETS


def _chain() -> onnx.ModelProto:
    """x -> a -> b -> out, with a side branch x -> c -> side."""
    nodes = [helper.make_node("Relu", ["x"], ["a_out"], name="a"),
             helper.make_node("Relu", ["a_out"], ["b_out"], name="b"),
             helper.make_node("Sigmoid", ["b_out"], ["out"], name="s"),
             helper.make_node("Relu", ["x"], ["side"], name="c")]
    value = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "chain", [value("x", TensorProto.FLOAT, [1])],
                              [value("out", TensorProto.FLOAT, [1]),
                               value("side", TensorProto.FLOAT, [1])])
    return helper.make_model(graph)


def test_downstream_takes_the_named_nodes_and_what_reads_them() -> None:
    assert downstream(_chain(), ["b"]) == ["b", "s"]
    assert downstream(_chain(), ["a"]) == ["a", "b", "s"]
    with pytest.raises(ValueError, match="no such nodes"):
        downstream(_chain(), ["missing"])


def test_nanodet_keeps_its_last_convolutions_and_outputs_fp32() -> None:
    target = TARGETS["objects"]
    model = onnx.load(str(target.artifact.path()))
    kept = target.head(model)
    by_name = {node.name: node for node in model.graph.node}
    assert sorted(name for name in kept if by_name[name].op_type == "Conv") == [
        "Conv__176", "Conv__178", "Conv__180"]
    producers = {output for name in kept for output in by_name[name].output}
    assert {output.name for output in model.graph.output} <= producers


def test_yolov8_quantises_only_the_detect_modules_first_conv_blocks() -> None:
    target = TARGETS["nudity"]
    model = onnx.load(str(target.artifact.path()))
    kept = set(target.head(model))
    detect_convs = [node.name for node in model.graph.node
                    if node.op_type == "Conv" and node.name.startswith("/model.22/")]
    assert len(detect_convs) == 19  # 3 strides x 2 branches x 3 convs + the DFL conv
    quantised = [name for name in detect_convs if name not in kept]
    assert len(quantised) == 12
    assert all(re.fullmatch(r"/model\.22/cv[23]\.[0-2]/cv[23]\.[0-2]\.[01]/conv/Conv", name)
               for name in quantised)
    assert "output0" in {output for node in model.graph.node if node.name in kept
                         for output in node.output}
