"""How close a model runs to this core's arithmetic ceiling: the headroom left to any runtime.

    .venv/bin/python -m benchmarks.roofline

A convolutional model's work is its multiply-accumulates (MACs), counted here from the ONNX graph
at a given input shape (`multiply_accumulates`). A core's ceiling for that work is what its best
kernels reach on a large matrix product: ONNX Runtime's GEMM in FP32 and in INT8 (MLAS, the
kernels its Conv and QLinearConv run on; VNNI where the CPU has it) and OpenVINO's in bfloat16,
each on one thread (`gemm_rates`). A model's achieved rate over its precision's ceiling says how
much any runtime could still win on this host; the rate a speed-up target needs, over the
ceilings, says which precisions could reach it at all. The Intel Xeon of issue 11 ran the text
detector's FP32 file at about a tenth of its FP32 ceiling (subnormal weights); an AMD EPYC runs
it at about 0.7 of it, where no FP32 runtime can be 3x faster.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper, shape_inference

GEMM_SIDE = 1024  # M = N = K of the ceiling's matrix product: 1.07 G MACs a call
_MAC_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MatMul", "Gemm",
                      "MatMulInteger", "QLinearMatMul"})


def multiply_accumulates(model: str | Path | bytes, input_shape: Sequence[int]) -> int:
    """MACs of one call with the model's first input of `input_shape`, over its convolutions
    and matrix products (the rest, activations and adds, is a few percent of a CNN's work)."""
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, input_shape, strict=True):
        dim.Clear()
        dim.dim_value = int(size)
    proto = shape_inference.infer_shapes(proto, strict_mode=True)
    shapes = {info.name: tuple(d.dim_value for d in info.type.tensor_type.shape.dim)
              for info in [*proto.graph.input, *proto.graph.value_info, *proto.graph.output]}
    weights = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    total = 0
    for node in proto.graph.node:
        if node.op_type not in _MAC_OPS:
            continue
        # QLinearConv / QLinearMatMul carry scales and zero points between their operands.
        quantised = node.op_type.startswith("QLinear")
        a_name = node.input[0]
        b_name = node.input[3] if quantised else node.input[1]
        a_shape = shapes.get(a_name) or weights.get(a_name)
        b_shape = shapes.get(b_name) or weights.get(b_name)
        out_shape = shapes.get(node.output[0])
        if not a_shape or not b_shape or not out_shape:
            raise ValueError(f"{node.op_type} {node.name!r}: shapes unknown at {input_shape}")
        if node.op_type == "ConvTranspose":
            # Every input pixel of every image scatters C_in x (C_out / group) x kernel products.
            total += a_shape[0] * int(np.prod(a_shape[2:])) * int(np.prod(b_shape))
        elif "Conv" in node.op_type:
            # Every output pixel of every image gathers C_out x (C_in / group) x kernel products.
            total += out_shape[0] * int(np.prod(out_shape[2:])) * int(np.prod(b_shape))
        else:
            transposed = node.op_type == "Gemm" and any(
                attribute.name == "transA" and attribute.i for attribute in node.attribute)
            inner = a_shape[-2] if transposed else a_shape[-1]
            total += int(np.prod(out_shape)) * int(inner)
    return total


def _matmul_model(a_type: int, b: np.ndarray, op: str, out_type: int) -> bytes:
    side = b.shape[0]
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", a_type, [side, side])],
        [helper.make_tensor_value_info("c", out_type, [side, side])],
        [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def _one_thread_session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _rate(call: Callable[[], object], macs: int, min_calls: int, min_s: float) -> float:
    """G MACs per CPU second of `call`, median over the calls after a first unmeasured one."""
    call()
    cpu_s: list[float] = []
    began = time.perf_counter()
    while len(cpu_s) < min_calls or time.perf_counter() - began < min_s:
        start = time.process_time()
        call()
        cpu_s.append(time.process_time() - start)
    return macs / max(float(np.median(cpu_s)), 1e-9) / 1e9


def gemm_rates(min_calls: int = 10, min_s: float = 1.0) -> dict[str, float]:
    """This core's G MACs per CPU second on a GEMM_SIDE³ matrix product, one thread: "fp32" and
    "int8" (u8 x s8, as ONNX Runtime's QDQ convolutions run) on ONNX Runtime, and "bf16" on
    OpenVINO where it compiles bfloat16 (emulated on AVX-512 without native bf16: then it is
    that emulation's rate)."""
    side = GEMM_SIDE
    macs = side ** 3
    rng = np.random.default_rng(0)
    rates: dict[str, float] = {}

    fp32_weights = rng.random((side, side), dtype=np.float32)
    fp32 = _one_thread_session(_matmul_model(TensorProto.FLOAT, fp32_weights, "MatMul",
                                             TensorProto.FLOAT))
    fp32_feed = {"a": rng.random((side, side), dtype=np.float32)}
    rates["fp32"] = _rate(lambda: fp32.run(None, fp32_feed), macs, min_calls, min_s)

    int8_weights = rng.integers(-128, 128, (side, side), dtype=np.int8)
    int8 = _one_thread_session(_matmul_model(TensorProto.UINT8, int8_weights, "MatMulInteger",
                                             TensorProto.INT32))
    int8_feed = {"a": rng.integers(0, 256, (side, side), dtype=np.uint8)}
    rates["int8"] = _rate(lambda: int8.run(None, int8_feed), macs, min_calls, min_s)

    from models.runtime.select import openvino_available

    if openvino_available():
        from models.runtime.openvino_cpu import OpenVinoCpu, compiles_bf16

        if compiles_bf16():
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "gemm.onnx"
                path.write_bytes(_matmul_model(TensorProto.FLOAT, fp32_weights, "MatMul",
                                               TensorProto.FLOAT))
                bf16 = OpenVinoCpu("gemm", path, threads=1, precision="bf16")
            rates["bf16"] = _rate(lambda: bf16.run(fp32_feed), macs, min_calls, min_s)
    return rates


def headroom(macs: int, cpu_ms: float, ceiling: float) -> dict[str, float]:
    """A model's achieved G MACs per CPU second, and that over its precision's ceiling."""
    achieved = macs / (cpu_ms / 1000) / 1e9
    return {"gmacs_per_s": achieved, "of_ceiling": achieved / ceiling}


def needed_rate(macs: int, reference_cpu_ms: float, speedup: float) -> float:
    """G MACs per CPU second a model of `macs` must run at to be `speedup` times cheaper than
    the reference's `reference_cpu_ms`."""
    return macs / (reference_cpu_ms / speedup / 1000) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    from models.artifacts import TEXT_DETECTOR, TEXT_DETECTOR_TINY
    from models.runtime.cpu_features import cpu_features

    print(f"on {cpu_features().describe()}")
    rates = gemm_rates()
    print("GEMM ceilings, one thread, G MACs per CPU second: "
          + ", ".join(f"{name} {rate:.1f}" for name, rate in rates.items()))
    for artifact in (TEXT_DETECTOR, TEXT_DETECTOR_TINY):
        if artifact.path().exists():
            macs = multiply_accumulates(artifact.path(), (1, 3, 640, 640))
            print(f"{artifact.name} at 640x640: {macs / 1e9:.2f} G MACs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

