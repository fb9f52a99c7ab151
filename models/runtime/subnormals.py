"""Subnormal float weights, zeroed before ONNX Runtime loads a model on the CPU.

PP-OCRv6 det small (the text detector) ships 255,958 float32 weights whose magnitude is below
2^-126, the smallest normal float: subnormals, 24% and 63% of the weights of its two 768 -> 384
1 x 1 convolutions. An Intel core takes a microcode assist on every multiply with a subnormal
operand unless DAZ is set in the thread's MXCSR; AMD's Zen cores do not. That is why the same
file took 42 ms on an EPYC and 416 ms on a 2-core Xeon, 297 ms of it in those two convolutions
(ORT's profiler, 2026-12-06). Zeroed, the Xeon runs it in 116 ms.

Zeroing them changes nothing a detector reads: a term under 1.2e-38 vanishes in any float32 sum
with a term of normal size, and the output maps of the zeroed model matched the shipped one's bit
for bit (tests/models/runtime/test_subnormals.py). ONNX Runtime's own switch
(`session.set_denormal_as_zero`) sets DAZ on its intra-op pool threads only; with one thread per
session, as the replicas run, the caller's thread computes and stays slow (measured: no change).
OpenVINO's CPU plugin is not slowed by them (110 ms either way), so only ONNX Runtime on the CPU
gets the zeroed copy; GPUs multiply subnormals at full speed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, TensorProto

logger = logging.getLogger(__name__)

# ONNX TensorProto data types whose subnormals an x86 core computes slowly: float32 and float64.
# float16 weights are widened to float32 before any arithmetic, where they are normal.
_FLUSHED_TYPES: dict[int, type[np.floating]] = {1: np.float32, 11: np.float64}


@dataclass(frozen=True)
class LoadableModel:
    """What to hand `onnxruntime.InferenceSession`: the file itself when it has no subnormal
    weight, else the serialized model with them zeroed."""

    source: str | bytes
    flushed: int  # weights set to zero

    @property
    def note(self) -> str:
        return f"{self.flushed} subnormal weights zeroed" if self.flushed else ""


def loadable_model(path: Path) -> LoadableModel:
    """The model at `path`, with every subnormal float32/float64 weight set to zero."""
    import onnx

    model = onnx.load(str(path))
    flushed = flush_subnormal_weights(model)
    if not flushed:
        return LoadableModel(str(path), 0)
    logger.info("%s: %d subnormal weights set to zero", path.name, flushed)
    return LoadableModel(model.SerializeToString(), flushed)


def flush_subnormal_weights(model: ModelProto) -> int:
    """Zero the subnormal values of every float32/float64 initializer and Constant of `model`
    (an `onnx.ModelProto`, in place), subgraphs included; the count zeroed."""
    from onnx import numpy_helper

    flushed = 0
    for tensor in _weight_tensors(model.graph):
        dtype = _FLUSHED_TYPES.get(tensor.data_type)
        if dtype is None:
            continue
        values = numpy_helper.to_array(tensor)
        subnormal = (values != 0) & (np.abs(values) < np.finfo(dtype).tiny)
        count = int(np.count_nonzero(subnormal))
        if count:
            values = values.copy()
            values[subnormal] = 0
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
            flushed += count
    return flushed


def _weight_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _weight_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _weight_tensors(subgraph)
