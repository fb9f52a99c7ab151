"""TensorRT at run time: load (or build, then cache) one model's engine and execute batches.

Execution follows the name-based tensor API of TensorRT 10/11 (https://docs.nvidia.com/
deeplearning/tensorrt/latest/inference-library/python-api-docs.html, "Performing Inference"):
`set_input_shape` for every input, `set_tensor_address` for every I/O tensor, then
`execute_async_v3(stream)`. Device buffers are torch CUDA tensors on a torch stream we own, so
there is no pycuda/cuda-python dependency and torch's caching allocator recycles the buffers.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from models.artifacts import sha256_of
from models.runtime.base import InferenceError, Precision, RuntimeInfo, RuntimeInputError
from models.runtime.engine_cache import CacheStatus, EngineCache, EngineKey, EngineSidecar
from models.runtime.profiles import Profile, ShapeRange
from models.runtime.tensorrt_build import (
    DEFAULT_WORKSPACE_BYTES,
    BuiltEngine,
    EngineBuildError,
    PrecisionPlan,
    TensorRtUnavailable,
    available_fp16_converters,
    build_engine,
    fp32_fallback,
    import_tensorrt,
    major_version,
    plan_precision,
    tensorrt_version,
    trt_logger,
)
from models.runtime.torch_device import GpuIdentity

logger = logging.getLogger(__name__)


class EngineLoadError(RuntimeError):
    """A serialized engine that this TensorRT/GPU cannot deserialize or run."""


def _torch_dtype(trt: Any, trt_dtype: Any) -> torch.dtype:
    mapping = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.bfloat16: torch.bfloat16,
        trt.int8: torch.int8,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.bool: torch.bool,
        trt.uint8: torch.uint8,
    }
    if trt_dtype not in mapping:
        raise EngineLoadError(f"engine tensor type {trt_dtype} has no torch equivalent")
    return mapping[trt_dtype]


class TensorRtRuntime:
    """One deserialized engine with one execution context, used by one thread at a time."""

    def __init__(
        self, model_name: str, engine: bytes, *, gpu: GpuIdentity, precision: Precision,
        detail: str = "",
    ) -> None:
        trt = import_tensorrt()
        self._device = torch.device("cuda", gpu.index)
        with torch.cuda.device(self._device):
            # The Runtime must outlive the engine it deserialized, hence an attribute.
            self._trt_runtime = trt.Runtime(trt_logger())
            try:
                self._engine = self._trt_runtime.deserialize_cuda_engine(engine)
            except Exception as error:  # the bindings raise on some malformed plans
                raise EngineLoadError(f"deserialize_cuda_engine raised: {error}") from error
            # "None if it could not be deserialized" (https://docs.nvidia.com/deeplearning/
            # tensorrt/latest/_static/python-api/infer/Core/Runtime.html): e.g. a plan from
            # another TensorRT version or GPU, or a damaged file.
            if self._engine is None:
                raise EngineLoadError("deserialize_cuda_engine returned None")
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise EngineLoadError("create_execution_context returned None (GPU memory?)")
            # A non-default stream: on the default one TensorRT adds cudaDeviceSynchronize calls
            # (execute_async_v3 in .../python-api/infer/Core/ExecutionContext.html).
            self._stream = torch.cuda.Stream(self._device)
        names = [self._engine.get_tensor_name(index)
                 for index in range(self._engine.num_io_tensors)]
        self._inputs = [name for name in names
                        if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT]
        self._outputs = [name for name in names if name not in self._inputs]
        self._dtypes = {name: _torch_dtype(trt, self._engine.get_tensor_dtype(name))
                        for name in names}
        self._ranges = {
            name: ShapeRange(*(tuple(int(size) for size in dims)
                               for dims in self._engine.get_tensor_profile_shape(name, 0)))
            for name in self._inputs
        }
        self._max_batch = min(shape_range.max[0] for shape_range in self._ranges.values())
        self._lock = threading.Lock()  # one execution context: runs must not interleave
        self._info = RuntimeInfo(model_name, "tensorrt", gpu.label, precision, detail)

    @property
    def info(self) -> RuntimeInfo:
        return self._info

    @property
    def input_ranges(self) -> dict[str, ShapeRange]:
        return dict(self._ranges)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = self._checked(inputs)
        batch = next(iter(arrays.values())).shape[0]
        with self._lock:
            if batch <= self._max_batch:
                return self._execute(arrays)
            # Bigger than the profile (Serve's max_batch_size raised at run time): run in
            # profile-sized chunks instead of failing the whole batch.
            parts = [
                self._execute({name: array[start:start + self._max_batch]
                               for name, array in arrays.items()})
                for start in range(0, batch, self._max_batch)
            ]
        return {name: np.concatenate([part[name] for part in parts]) for name in self._outputs}

    def _checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if set(inputs) != set(self._inputs):
            raise RuntimeInputError(
                f"{self._info.model} takes inputs {self._inputs}, got {sorted(inputs)}"
            )
        arrays = {name: np.require(inputs[name], requirements=("C", "W")) for name in self._inputs}
        batches = {array.shape[0] if array.ndim else 0 for array in arrays.values()}
        if len(batches) != 1 or 0 in batches:
            raise RuntimeInputError(f"{self._info.model}: inputs need one non-empty batch axis")
        for name, array in arrays.items():
            shape_range = self._ranges[name]
            sample = (shape_range.min[0], *array.shape[1:])  # the batch axis is chunked
            if not shape_range.contains(sample):
                raise RuntimeInputError(
                    f"{self._info.model}: input {name!r} shape {array.shape} is outside the "
                    f"engine profile {shape_range}"
                )
        return arrays

    def _execute(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            bound: list[torch.Tensor] = []  # keeps every buffer alive until the stream is done
            for name in self._inputs:
                tensor = torch.from_numpy(arrays[name]).to(self._device, self._dtypes[name])
                if not self._context.set_input_shape(name, tuple(tensor.shape)):
                    raise RuntimeInputError(f"set_input_shape({name}, {tuple(tensor.shape)}) "
                                            "was refused")
                self._context.set_tensor_address(name, tensor.data_ptr())
                bound.append(tensor)
            outputs: dict[str, torch.Tensor] = {}
            for name in self._outputs:
                shape = tuple(int(size) for size in self._context.get_tensor_shape(name))
                if any(size < 0 for size in shape):
                    raise InferenceError(f"output {name!r} has a data-dependent shape {shape}; "
                                         "this runtime does not implement output allocators")
                buffer = torch.empty(shape, dtype=self._dtypes[name], device=self._device)
                self._context.set_tensor_address(name, buffer.data_ptr())
                outputs[name] = buffer
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise InferenceError(f"{self._info.model}: execute_async_v3 failed")
            self._stream.synchronize()
            return {name: _to_host(buffer) for name, buffer in outputs.items()}


def _to_host(buffer: torch.Tensor) -> np.ndarray:
    if buffer.is_floating_point():
        buffer = buffer.float()  # the runtime contract: float32 on the host
    return buffer.cpu().numpy()


class TensorRtEngineSource:
    """One model's engine on this GPU: its cache key, and loading or building it.

    Construction is cheap (hashes the ONNX, reads versions) and never builds, so a Serve
    replica can decide in `__init__` whether a cached engine exists and defer the build.
    """

    def __init__(
        self,
        model_name: str,
        onnx_path: Path,
        profile: Profile,
        *,
        precision: str,
        cache: EngineCache,
        gpu: GpuIdentity,
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    ) -> None:
        version = tensorrt_version()
        if version is None:
            raise TensorRtUnavailable("tensorrt is not importable")
        self.model_name = model_name
        self.onnx_path = onnx_path
        self.profile = dict(profile)
        self.cache = cache
        self.gpu = gpu
        self.workspace_bytes = workspace_bytes
        self.tensorrt_version = version
        self.plan: PrecisionPlan = plan_precision(precision, major_version(version),
                                                  available_fp16_converters())
        self.key = EngineKey.create(
            onnx_sha256=sha256_of(onnx_path),
            gpu_name=gpu.name,
            compute_capability=gpu.compute_capability,
            tensorrt_version=version,
            precision=self.plan.precision,
            profile=self.profile,
        )
        self.miss_reason = ""  # why the last load_cached() found nothing usable
        self._cached_engine_unusable = False

    @property
    def engine_path(self) -> Path:
        return self.cache.engine_path(self.key, self.model_name)

    def load_cached(self) -> TensorRtRuntime | None:
        """The cached engine as a runtime, or None (reason in `miss_reason`); never builds."""
        lookup = self.cache.lookup(self.key, self.model_name)
        if lookup.status is not CacheStatus.HIT or lookup.engine is None or lookup.sidecar is None:
            self.miss_reason = f"{lookup.status.value}: {lookup.reason}"
            level = logging.INFO if lookup.status is CacheStatus.MISSING else logging.WARNING
            logger.log(level, "%s: no usable TensorRT engine (%s)", self.model_name,
                       self.miss_reason)
            return None
        try:
            return self._runtime(lookup.engine, lookup.sidecar, "loaded from cache")
        except EngineLoadError as error:
            self.miss_reason = f"cached engine did not load: {error}"
            self._cached_engine_unusable = True
            logger.warning("%s: %s; it will be rebuilt", self.model_name, self.miss_reason)
            return None

    def build(self, *, force: bool = False) -> EngineSidecar:
        """Build and cache the engine unless a valid one is already there (another replica may
        have built it while this one waited for the lock)."""
        with self.cache.build_lock(self.key, self.model_name):
            if not (force or self._cached_engine_unusable):
                lookup = self.cache.lookup(self.key, self.model_name)
                if lookup.status is CacheStatus.HIT and lookup.sidecar is not None:
                    logger.info("%s: engine already cached at %s", self.model_name,
                                self.engine_path)
                    return lookup.sidecar
            built = self._build_with_fp32_fallback()
            sidecar = self.cache.store(
                self.key, self.model_name, built.engine, built_precision=built.precision,
                build_time_s=built.build_time_s, builder=built.builder, notes=built.notes,
            )
            self._cached_engine_unusable = False
            logger.warning("%s: built %s TensorRT engine in %.1f s -> %s", self.model_name,
                           built.precision, built.build_time_s, self.engine_path)
            return sidecar

    def load_or_build(self) -> TensorRtRuntime:
        runtime = self.load_cached()
        if runtime is not None:
            return runtime
        self.build()
        lookup = self.cache.lookup(self.key, self.model_name)
        if lookup.engine is None or lookup.sidecar is None:
            raise EngineLoadError(f"engine vanished right after the build: {lookup.reason}")
        return self._runtime(lookup.engine, lookup.sidecar, "built on this host")

    def _build_with_fp32_fallback(self) -> BuiltEngine:
        timing_cache = self.cache.timing_cache_path(
            self.gpu.name, self.gpu.compute_capability, self.tensorrt_version
        )
        try:
            return build_engine(self.onnx_path, self.profile, self.plan,
                                workspace_bytes=self.workspace_bytes,
                                timing_cache_path=timing_cache)
        except EngineBuildError as error:
            if self.plan.precision != "fp16":
                raise
            # "FP16 where the model allows": a graph the FP16 path cannot take still runs.
            logger.warning("%s: FP16 build failed (%s); building FP32", self.model_name, error)
            return build_engine(self.onnx_path, self.profile,
                                fp32_fallback(self.plan, str(error)),
                                workspace_bytes=self.workspace_bytes,
                                timing_cache_path=timing_cache)

    def _runtime(self, engine: bytes, sidecar: EngineSidecar, origin: str) -> TensorRtRuntime:
        notes = "; ".join(sidecar.notes)
        detail = (f"TensorRT {self.tensorrt_version}, {sidecar.builder.get('fp16_method')}, "
                  f"engine {self.engine_path.name} {origin} (built {sidecar.built_at} in "
                  f"{sidecar.build_time_s:.0f} s)" + (f"; {notes}" if notes else ""))
        return TensorRtRuntime(self.model_name, engine, gpu=self.gpu,
                               precision=cast(Precision, sidecar.built_precision), detail=detail)
