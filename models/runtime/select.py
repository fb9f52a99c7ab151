"""Choosing the runtime for a model at start-up: TensorRT where a GPU and TensorRT exist, else ONNX
Runtime (CUDA, then CPU). The choice is logged once (INFO) and reported through `.info`.

Serve replicas must pass their health check before going live, so nothing here builds an
engine in `create_runtime`: a cached engine loads in seconds; without one the runtime is
returned unbuilt (`deferred.BuildOnFirstUse`, logged loudly) and builds in the background from
its first use, with ONNX Runtime answering meanwhile and for good if the build fails. Run
`curator models build-engines` ahead of a deployment so that never happens.

On the CPU (`choose_cpu_model`, unless the operator names a `cpu_precision`): a model whose bf16
answers were measured to change no verdict (`ModelArtifact.auto_bf16`) runs its FP32 file in
bfloat16 on OpenVINO where the CPU has native bf16 (AMX or AVX512-BF16) and OpenVINO is
installed; every other model runs its FP32 file on ONNX Runtime, its subnormal weights zeroed. A
model's INT8 sibling (`ModelArtifact.int8`) runs only when `cpu_precision: int8` asks for it. GPU
runtimes always get the FP32 file.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort
import torch

from models.artifacts import CACHE_DIR, ModelArtifact, all_artifacts, int8_variant
from models.runtime.base import InferenceRuntime, Precision
from models.runtime.cpu_features import CpuFeatures, cpu_features
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
    "BuildOnFirstUse", "choose_cpu_model", "create_runtime", "default_engine_dir",
    "describe_backends", "torch_device",
]

logger = logging.getLogger(__name__)

Prefer = Literal["auto", "tensorrt", "onnxruntime"]
RequestedPrecision = Literal["fp16", "fp32"]
# What runs on the CPU: "auto" = bf16 (OpenVINO) for the models that keep their verdicts in it,
# on a CPU with native bf16, else FP32 (ONNX Runtime); or one of the others for every model.
CpuPrecision = Literal["auto", "fp32", "int8", "bf16"]
CPU_PRECISIONS: tuple[str, ...] = ("auto", "fp32", "int8", "bf16")


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
    cpu_precision: CpuPrecision = "auto",
) -> InferenceRuntime:
    """The runtime for one ONNX artifact.

    batch_profile: (1, opt, max) of the batch axis; max >= the Serve batcher's max_batch_size.
    sample_shape: non-batch input dims, each an int or a (min, opt, max) range; None takes the
        artifact's registered engine shape (`profiles.default_sample_shape`).
    prefer: "auto" = TensorRT, else ONNX Runtime CUDA, else CPU; "tensorrt" is the same but
        warns when it cannot be had; "onnxruntime" = ONNX Runtime only (its TensorRT EP first
        when available, which builds during session creation unless its cache holds the engine).
    precision: what TensorRT (and ORT's TensorRT EP) build in, on a GPU.
    cpu_precision: what runs on the CPU, and so which runtime (`choose_cpu_model`).
    """
    if prefer not in ("auto", "tensorrt", "onnxruntime"):
        raise ValueError(f"prefer must be auto, tensorrt or onnxruntime, not {prefer!r}")
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, not {precision!r}")
    if cpu_precision not in CPU_PRECISIONS:
        raise ValueError(f"cpu_precision must be one of {CPU_PRECISIONS}, not {cpu_precision!r}")
    ShapeRange((batch_profile[0],), (batch_profile[1],), (batch_profile[2],))  # fail fast
    onnx_path = artifact.path()
    directory = engine_dir if engine_dir is not None else default_engine_dir()
    gpu = gpu_identity()
    profile, profile_problem = _profile(artifact, batch_profile, sample_shape)

    def onnxruntime_fallback(reason: str) -> InferenceRuntime:
        return _onnxruntime(artifact, onnx_path, gpu=gpu, profile=None, precision=precision,
                            engine_dir=directory, intra_op_threads=intra_op_threads,
                            cpu_precision=cpu_precision, note=reason)

    if prefer == "onnxruntime":
        runtime = _onnxruntime(artifact, onnx_path, gpu=gpu, profile=profile,
                               precision=precision, engine_dir=directory,
                               intra_op_threads=intra_op_threads, cpu_precision=cpu_precision,
                               note="")
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
    cpu_precision: CpuPrecision,
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
        choice = choose_cpu_model(artifact, cpu_precision, cpu_features(), openvino_available())
        if choice.runtime == "openvino":
            from models.runtime.openvino_cpu import OpenVinoCpu

            runtime = OpenVinoCpu(artifact.name, choice.path, threads=intra_op_threads,
                                  precision=choice.precision, note=choice.reason)
        else:
            runtime = OnnxRuntimeCpu(artifact.name, choice.path,
                                     intra_op_threads=intra_op_threads,
                                     precision=choice.precision, note=choice.reason)
    return WithNote(runtime, note) if note else runtime


def openvino_available() -> bool:
    """Whether the openvino package is installed (the `cpu` extra has it)."""
    return importlib.util.find_spec("openvino") is not None


@dataclass(frozen=True)
class CpuModelChoice:
    path: Path  # the ONNX file the CPU runtime loads
    precision: Precision
    reason: str  # for the log and RuntimeInfo.detail
    runtime: Literal["onnxruntime", "openvino"] = "onnxruntime"


def choose_cpu_model(
    artifact: ModelArtifact, requested: CpuPrecision, features: CpuFeatures,
    openvino: bool = False,
) -> CpuModelChoice:
    """The runtime, file and precision of `artifact` on a CPU with `features`; `openvino`:
    whether OpenVINO is installed.

    "auto" takes bf16 in OpenVINO for a model marked `auto_bf16` where the CPU has native bf16
    (AMX tiles or AVX512-BF16): 1.16-2.4x less CPU than ONNX Runtime FP32 on a Zen 4 EPYC, 2-3x
    on an AMX Xeon (benchmarks/models.py). The text detector and NanoDet are not marked: in
    bf16 each changed one dev-set verdict that FP32 got right (macro F1 0.896 against 0.904,
    under the 0.90 target), though on held-out photos bf16 text finds 0.971 of FP32's boxes, above
    the 0.957 noise floor. Every other case takes the FP32 file on ONNX Runtime, its subnormal
    weights zeroed (models/runtime/subnormals.py). With them zeroed, the INT8 text model saves
    only a fifth of the text detector's CPU (126 against 158 ms on a VNNI Xeon, 2026-12-06) and
    misses text FP32 finds: 0.922 of FP32's boxes on the 160 independent evaluation photos
    against a noise floor of 0.970, and two overlay verdicts changed there (none from noise); on
    the dev set, one overlay false positive more. Detection comes first, so INT8 runs only when
    asked for. "bf16" takes OpenVINO for every model on any CPU (without native bf16 it emulates
    it on AVX-512, slower than FP32, and computes f32 elsewhere; the runtime reports which);
    "int8" takes the INT8 sibling on any CPU (the operator measured and accepts the recall);
    "fp32" is ONNX Runtime FP32. A missing INT8 file or OpenVINO package falls back with a
    warning.
    """
    sibling = int8_variant(artifact)
    fp32 = CpuModelChoice(artifact.path(), "fp32", "")
    if requested == "bf16" or (requested == "auto" and auto_takes_bf16(artifact, features)):
        why = "native bf16" if requested == "auto" else "cpu_precision=bf16"
        if openvino:
            return CpuModelChoice(artifact.path(), "bf16", f"bf16 ({why})", runtime="openvino")
        log = logger.warning if requested == "bf16" else logger.info
        log("%s: %s but openvino is not installed; running ONNX Runtime", artifact.name, why)
        if requested == "bf16":
            return CpuModelChoice(fp32.path, "fp32", "openvino not installed")
    if requested == "fp32":
        return CpuModelChoice(fp32.path, "fp32", "cpu_precision=fp32")
    if requested == "auto":
        return fp32
    if sibling is None:
        logger.warning("%s: cpu_precision=int8 but it has no INT8 model; running FP32",
                       artifact.name)
        return CpuModelChoice(fp32.path, "fp32", "no INT8 model")
    if not sibling.local_path.is_file():
        logger.warning("%s: INT8 model %s missing at %s; running FP32", artifact.name,
                       sibling.name, sibling.local_path)
        return CpuModelChoice(fp32.path, "fp32", f"INT8 model {sibling.name} missing")
    return CpuModelChoice(sibling.path(), "int8",
                          f"INT8 (cpu_precision=int8): {sibling.local_path.name}")


def auto_takes_bf16(artifact: ModelArtifact, features: CpuFeatures) -> bool:
    """Whether `cpu_precision: auto` runs `artifact` in bf16 on a CPU with `features` (where
    OpenVINO is installed): the model keeps its verdicts in bf16 and the CPU computes it
    natively."""
    return artifact.auto_bf16 and features.native_bf16


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
        default = "onnxruntime-cpu"  # but OpenVINO for cpu_bf16_models
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
        "openvino": _openvino_version(),
        "cpu": cpu_features().describe(),
        # The models `cpu_precision: auto` runs in bf16 on OpenVINO on this host's CPU.
        "cpu_bf16_models": (
            [artifact.name for artifact in all_artifacts()
             if auto_takes_bf16(artifact, cpu_features())]
            if default == "onnxruntime-cpu" and openvino_available() else []),
        "engine_dir": str(default_engine_dir()),
    }


def _openvino_version() -> str | None:
    if not openvino_available():
        return None
    import openvino

    return str(openvino.get_version()).split("-")[0]


def describe_backends() -> dict[str, Any]:
    """What this process could run models on, for `/v1/version` (cached: it cannot change)."""
    return dict(_backends())
