"""ONNX Runtime on the GPU (onnxruntime-gpu): the CUDA execution provider, optionally behind
ONNX Runtime's own TensorRT execution provider.

Provider options follow https://onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html
and .../CUDA-ExecutionProvider.html. The TensorRT EP builds its engines while the session is
created unless its engine cache already holds them, so `create_runtime` only asks for it when
told to (prefer="onnxruntime"); the default GPU path is our own TensorRT runtime, whose builds are
deferred off a replica's start-up.

ONNX Runtime quietly drops a provider it cannot load (missing CUDA/TensorRT libraries) and runs
on what is left, so what we report is `session.get_providers()`, never what we asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.runtime.base import Precision, RuntimeInfo
from models.runtime.profiles import Profile, ort_profile_options

logger = logging.getLogger(__name__)

TENSORRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"


def gpu_providers_available() -> bool:
    return CUDA_EP in ort.get_available_providers()


def tensorrt_ep_options(
    profile: Profile, cache_dir: Path, *, fp16: bool, device_index: int = 0
) -> dict[str, Any]:
    """TensorRT EP options: engine and timing caches on disk, one explicit profile (so batches
    of any size in range reuse one engine instead of rebuilding per new shape)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    return {
        "device_id": device_index,
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        **ort_profile_options(profile),
    }


class OnnxRuntimeGpu:
    def __init__(
        self,
        model_name: str,
        onnx_path: Path,
        *,
        device_label: str,
        device_index: int = 0,
        tensorrt_profile: Profile | None = None,
        tensorrt_cache_dir: Path | None = None,
        fp16: bool = False,
    ) -> None:
        """`tensorrt_profile` and `tensorrt_cache_dir` together put the TensorRT EP first."""
        available = ort.get_available_providers()
        providers: list[str | tuple[str, dict[str, Any]]] = []
        if tensorrt_profile is not None and tensorrt_cache_dir is not None:
            if TENSORRT_EP in available:
                providers.append((TENSORRT_EP, tensorrt_ep_options(
                    tensorrt_profile, tensorrt_cache_dir, fp16=fp16, device_index=device_index)))
            else:
                logger.warning("%s: onnxruntime has no %s; using CUDA", model_name, TENSORRT_EP)
        providers.append((CUDA_EP, {"device_id": device_index}))
        providers.append(CPU_EP)  # nodes no GPU provider takes; also ORT's own last resort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(onnx_path), sess_options=options,
                                             providers=providers)
        self._output_names = [output.name for output in self._session.get_outputs()]
        active = self._session.get_providers()
        on_gpu = TENSORRT_EP in active or CUDA_EP in active
        if not on_gpu:
            logger.warning("%s: onnxruntime fell back to the CPU (providers %s)", model_name,
                           active)
        precision: Precision = "fp16" if fp16 and TENSORRT_EP in active else "fp32"
        self._info = RuntimeInfo(
            model_name, "onnxruntime", device_label if on_gpu else "cpu", precision,
            detail=f"onnxruntime {ort.__version__} providers={','.join(active)}",
        )

    @property
    def info(self) -> RuntimeInfo:
        return self._info

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self._output_names, inputs)
        return {
            name: value.astype(np.float32, copy=False) if np.issubdtype(value.dtype, np.floating)
            else value
            for name, value in zip(self._output_names, outputs, strict=True)
        }
