"""Choosing the runtime for a model at start-up: TensorRT where a GPU and TensorRT exist, else ONNX
Runtime (CUDA, then CPU). The choice is logged once (INFO) and reported through `.info`.

Serve replicas must pass their health check before going live, so nothing here builds an
engine in `create_runtime`: a cached engine loads in seconds; without one the runtime is
returned unbuilt (`deferred.BuildOnFirstUse`, logged loudly) and builds in the background from
its first use, with ONNX Runtime answering meanwhile and for good if the build fails. Run
`curator models build-engines` ahead of a deployment so that never happens.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort
import torch

from models.artifacts import CACHE_DIR, ModelArtifact
from models.runtime.base import InferenceRuntime
from models.runtime.deferred import BuildOnFirstUse, WithNote, log_choice
from models.runtime.engine_cache import EngineCache
from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
from models.runtime.onnxruntime_gpu import OnnxRuntimeGpu, gpu_providers_available
from models.runtime.profiles import (
    DEFAULT_BATCH_PROFILE,
    BatchProfile,
    Profile,
    ProfileError,
    SampleShape,
    ShapeRange,
    default_sample_shape,
    profile_for,
)
from models.runtime.tensorrt import TensorRtEngineSource
from models.runtime.tensorrt_build import (
    available_fp16_converters,
    major_version,
    tensorrt_version,
)
from models.runtime.torch_device import GpuIdentity, gpu_identity, torch_device

__all__ = [
    "BuildOnFirstUse", "create_runtime", "default_engine_dir", "describe_backends",
    "torch_device",
]

logger = logging.getLogger(__name__)

Prefer = Literal["auto", "tensorrt", "onnxruntime"]
RequestedPrecision = Literal["fp16", "fp32"]


def default_engine_dir() -> Path:
    """Beside the model artifacts (so every Ray worker of one virtualenv shares it), or
    CURATOR_ENGINE_DIR for a node-wide cache."""
    return Path(os.environ.get("CURATOR_ENGINE_DIR", CACHE_DIR / "engines"))


def create_runtime(
    artifact: ModelArtifact,
    *,
    batch_profile: BatchProfile = DEFAULT_BATCH_PROFILE,
    sample_shape: SampleShape | None = None,
    prefer: Prefer = "auto",
    precision: RequestedPrecision = "fp16",
    engine_dir: Path | None = None,
    intra_op_threads: int = 0,
) -> InferenceRuntime:
    """The runtime for one ONNX artifact.

    batch_profile: (1, opt, max) of the batch axis; max >= the Serve batcher's max_batch_size.
    sample_shape: non-batch input dims, each an int or a (min, opt, max) range; None takes the
        artifact's registered engine shape (`profiles.default_sample_shape`).
    prefer: "auto" = TensorRT, else ONNX Runtime CUDA, else CPU; "tensorrt" is the same but
        warns when it cannot be had; "onnxruntime" = ONNX Runtime only (its TensorRT EP first
        when available, which builds during session creation unless its cache holds the engine).
    """
    if prefer not in ("auto", "tensorrt", "onnxruntime"):
        raise ValueError(f"prefer must be auto, tensorrt or onnxruntime, not {prefer!r}")
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, not {precision!r}")
    ShapeRange((batch_profile[0],), (batch_profile[1],), (batch_profile[2],))  # fail fast
    onnx_path = artifact.path()
    directory = engine_dir if engine_dir is not None else default_engine_dir()
    gpu = gpu_identity()
    profile, profile_problem = _profile(artifact, batch_profile, sample_shape)

    def onnxruntime_fallback(reason: str) -> InferenceRuntime:
        return _onnxruntime(artifact, onnx_path, gpu=gpu, profile=None, precision=precision,
                            engine_dir=directory, intra_op_threads=intra_op_threads, note=reason)

    if prefer == "onnxruntime":
        runtime = _onnxruntime(artifact, onnx_path, gpu=gpu, profile=profile,
                               precision=precision, engine_dir=directory,
                               intra_op_threads=intra_op_threads, note="")
        return log_choice(runtime)

    reason = _tensorrt_unavailable(gpu, profile_problem)
    if reason is None and gpu is not None and profile is not None:
        try:
            source = TensorRtEngineSource(artifact.name, onnx_path, profile, precision=precision,
                                          cache=EngineCache(directory), gpu=gpu)
            cached = source.load_cached()
            if cached is not None:
                return log_choice(cached)
            return log_choice(BuildOnFirstUse(source, onnxruntime_fallback))
        except Exception as error:  # any TensorRT trouble must end in a working runtime
            logger.exception("%s: TensorRT set-up failed", artifact.name)
            reason = f"TensorRT set-up failed: {error}"
    level = logging.WARNING if prefer == "tensorrt" or gpu is not None else logging.INFO
    logger.log(level, "%s: not using TensorRT (%s)", artifact.name, reason)
    return log_choice(onnxruntime_fallback(f"no TensorRT: {reason}"))


def _profile(
    artifact: ModelArtifact, batch: BatchProfile, sample_shape: SampleShape | None
) -> tuple[Profile | None, str]:
    shape = sample_shape if sample_shape is not None else default_sample_shape(artifact)
    if shape is None:
        return None, f"no engine input shape is known for {artifact.name}"
    if not artifact.input_name:
        return None, f"{artifact.name} declares no input tensor name"
    try:
        return profile_for(artifact.input_name, batch, shape), ""
    except ProfileError as error:
        return None, str(error)


def _tensorrt_unavailable(gpu: GpuIdentity | None, profile_problem: str) -> str | None:
    if gpu is None:
        return "no CUDA GPU visible"
    version = tensorrt_version()
    if version is None:
        return "the tensorrt package is not importable (pip install -e '.[gpu]')"
    if profile_problem:
        return profile_problem
    return None


def _onnxruntime(
    artifact: ModelArtifact,
    onnx_path: Path,
    *,
    gpu: GpuIdentity | None,
    profile: Profile | None,
    precision: RequestedPrecision,
    engine_dir: Path,
    intra_op_threads: int,
    note: str,
) -> InferenceRuntime:
    runtime: InferenceRuntime | None = None
    if gpu is not None and gpu_providers_available():
        trt_version = tensorrt_version()
        # ORT's trt_fp16_enable maps onto the builder flag TensorRT 11 removed; on 11 the EP
        # gets an FP32 request rather than a claim we cannot check.
        fp16 = precision == "fp16" and (trt_version is None or major_version(trt_version) < 11)
        try:
            runtime = OnnxRuntimeGpu(
                artifact.name, onnx_path, device_label=gpu.label, device_index=gpu.index,
                tensorrt_profile=profile,
                tensorrt_cache_dir=engine_dir / "onnxruntime-trt" if profile else None,
                fp16=fp16,
            )
        except Exception as error:  # a broken CUDA install must still leave a CPU runtime
            logger.exception("%s: onnxruntime on the GPU failed; using the CPU", artifact.name)
            note = f"{note}; onnxruntime GPU failed: {error}".lstrip("; ")
    if runtime is None:
        runtime = OnnxRuntimeCpu(artifact.name, onnx_path, intra_op_threads=intra_op_threads)
    return WithNote(runtime, note) if note else runtime


@lru_cache(maxsize=1)
def _backends() -> dict[str, Any]:
    gpu = gpu_identity()
    trt_version = tensorrt_version()
    cuda_ep = gpu_providers_available()
    if gpu is not None and trt_version is not None:
        default = "tensorrt"
    elif gpu is not None and cuda_ep:
        default = "onnxruntime-cuda"
    else:
        default = "onnxruntime-cpu"
    return {
        "default_runtime": default,
        "gpu": gpu.name if gpu else None,
        "compute_capability": gpu.compute_capability if gpu else None,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "tensorrt": trt_version,
        "fp16_onnx_converters": list(available_fp16_converters()),
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": list(ort.get_available_providers()),
        "engine_dir": str(default_engine_dir()),
    }


def describe_backends() -> dict[str, Any]:
    """What this process could run models on, for `/v1/version` (cached: it cannot change)."""
    return dict(_backends())
