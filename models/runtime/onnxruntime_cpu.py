"""ONNX Runtime on the CPU: what runs on this machine and in CI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.runtime.base import Precision, RuntimeInfo
from models.runtime.subnormals import loadable_model


class OnnxRuntimeCpu:
    def __init__(self, model_name: str, onnx_path: Path, intra_op_threads: int = 0,
                 precision: Precision = "fp32", note: str = "") -> None:
        """`precision`: what the file at `onnx_path` computes in (an INT8 QDQ model: "int8");
        `note`: why this file was chosen, appended to `info.detail`."""
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        # No busy-waiting between operators: replicas share their cores with other replicas, and
        # a spinning thread takes a core from them. Measured on the 2-core host with one other
        # busy process: the text detector at 104 ms and 151 CPU ms per call spinning, 65 ms and
        # 97 CPU ms without; alone, 51 vs 54 ms.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The CPU arena stays on, so RSS steps up the first time each batch size runs and then
        # holds (bounded by the largest batch; tests/models/runtime/test_onnxruntime_cpu.py).
        # Off, RSS follows each call but the INT8 text detector took 6-11% more CPU per image
        # (2026-12-06, VNNI Xeon); ORT's kSameAsRequested extend strategy held more, not less.
        # Subnormal weights zeroed first: an Intel core computes them 100x slower (subnormals.py).
        model = loadable_model(onnx_path)
        self._session = ort.InferenceSession(
            model.source, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._output_names = [output.name for output in self._session.get_outputs()]
        detail = "; ".join(filter(None, (
            f"onnxruntime {ort.__version__} CPUExecutionProvider", model.note)))
        self._info = RuntimeInfo(model_name, "onnxruntime", "cpu", precision,
                                 detail=f"{detail}; {note}" if note else detail)

    @property
    def info(self) -> RuntimeInfo:
        return self._info

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self._output_names, inputs)
        return dict(zip(self._output_names, outputs, strict=True))
