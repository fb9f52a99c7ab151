"""The one interface every inference runtime implements.

A runtime is built for one ONNX model and runs whole batches: inputs and outputs are numpy
arrays keyed by the model's tensor names. Which runtime runs a model (TensorRT, ONNX Runtime on
CUDA or CPU) is decided once at start-up, logged, and reported through `info`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from curator.contracts.errors import CuratorError

# What a runtime computes in; fp64 only for the BRISQUE scorer (torch, float64: models/brisque.py).
Precision = Literal["fp64", "fp32", "fp16", "bf16", "int8"]


@dataclass(frozen=True)
class RuntimeInfo:
    model: str  # artifact name
    runtime: str  # "tensorrt", "onnxruntime", "openvino", "torch"
    device: str  # "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)", ...
    precision: Precision
    detail: str = ""  # e.g. ORT providers, engine cache file

    def as_dict(self) -> dict[str, str]:
        return {
            "runtime": self.runtime,
            "device": self.device,
            "precision": self.precision,
            "detail": self.detail,
        }


class InferenceRuntime(Protocol):
    @property
    def info(self) -> RuntimeInfo: ...

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One forward pass over a batch (first axis); float32 outputs on the host."""
        ...


class InferenceError(CuratorError):
    """A forward pass failed on inputs the service itself prepared: a server fault, not the
    client's, so HTTP 500."""

    status = 500
    code = "inference_failed"


class RuntimeInputError(InferenceError):
    """Inputs that the runtime cannot take (missing tensor, shape outside the engine's profile)."""

    code = "inference_input_invalid"
