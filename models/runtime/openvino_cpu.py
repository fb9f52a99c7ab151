"""OpenVINO on the CPU: the FP32 ONNX file run in bfloat16 on hosts with native bf16.

On a Xeon with AMX (Sapphire Rapids and later) OpenVINO executes a float model's convolutions in
bfloat16 on the matrix tiles: 2-3x less CPU than ONNX Runtime in FP32, and on the text detector
less than ONNX Runtime's INT8 model, with no calibration (measured in `make bench`); on AVX512-BF16
(Zen 4) 1.16-2.4x less. Asked for bf16 on a CPU without bfloat16 instructions, OpenVINO 2026 still
compiles bf16 where it can emulate it (AVX-512 alone: 2.3-3.2x more CPU than ONNX Runtime FP32
with its subnormal weights zeroed) and f32 elsewhere; `info.precision` reports what it compiled,
never what was asked for.

The INT8 QDQ file is not used here: OpenVINO ran it no faster than the FP32 file in bf16.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from models.runtime.base import Precision, RuntimeInfo, RuntimeInputError

# One Core per process: it holds the plugin and its thread pools.
_core_lock = threading.Lock()
_core: ov.Core | None = None


def _shared_core() -> ov.Core:
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


@functools.cache
def compiles_bf16() -> bool:
    """Whether OpenVINO's CPU plugin compiles a float model in bfloat16 when asked on this host.

    Compiled, not read from OPTIMIZATION_CAPABILITIES: that lists BF16 only for native bfloat16
    instructions, while the plugin also compiles bf16 on AVX-512 hosts without them."""
    from openvino import opset13 as ops

    image = ops.parameter([1, 3, 8, 8], np.float32, name="x")
    conv = ops.convolution(image, ops.constant(np.ones((4, 3, 3, 3), np.float32)),
                           [1, 1], [1, 1], [1, 1], [1, 1])
    compiled = _shared_core().compile_model(ov.Model([conv], [image]), "CPU",
                                            {"INFERENCE_PRECISION_HINT": "bf16"})
    return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"


class OpenVinoCpu:
    def __init__(self, model_name: str, onnx_path: Path, threads: int = 0,
                 precision: Precision = "bf16", note: str = "") -> None:
        """`threads`: inference threads (0: OpenVINO's default, one per core); `precision`:
        "bf16" or "fp32" (the execution precision asked for; FP32 weights either way)."""
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"OpenVINO runs bf16 or fp32 here, not {precision!r}")
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            # Pinned (OpenVINO's default on Linux), the one-thread sessions of a replica all
            # ran on one core: the extractor's detector threads took turns (two text
            # detectors side by side 139 ms wall for 140 CPU ms, 1 thread each) and the whole
            # extractor took 118 ms wall for 124 CPU. Unpinned, the OS spreads them: 74 ms wall
            # for 120 CPU. Replicas share the cores with other processes anyway.
            "ENABLE_CPU_PINNING": False,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = _shared_core()
        self._compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
        self._input_names = {port.get_any_name() for port in self._compiled.inputs}
        self._outputs = [(port.get_any_name(), port) for port in self._compiled.outputs]
        # An infer request is not thread-safe: one per calling thread (the extractor's detector
        # threads, Ray Data's actor threads).
        self._local = threading.local()
        compiled = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        actual: Precision = "bf16" if compiled == "bf16" else "fp32"
        detail = f"openvino {ov.get_version().split('-')[0]} CPU, {compiled}"
        self._info = RuntimeInfo(model_name, "openvino", "cpu", actual,
                                 detail=f"{detail}; {note}" if note else detail)

    @property
    def info(self) -> RuntimeInfo:
        return self._info

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = self._input_names - set(inputs)
        if missing:
            raise RuntimeInputError(f"{self._info.model}: missing inputs {sorted(missing)}")
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        try:
            results = request.infer({name: inputs[name] for name in self._input_names})
        except RuntimeError as error:
            raise RuntimeInputError(f"{self._info.model}: {error}") from error
        # Copies: the request reuses its output buffers on the next call.
        return {name: np.array(results[port], dtype=np.float32) for name, port in self._outputs}
