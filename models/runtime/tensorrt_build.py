"""Building a TensorRT engine from an ONNX file with the installed TensorRT's Python API.

Follows the TensorRT Python API guide (https://docs.nvidia.com/deeplearning/tensorrt/latest/
inference-library/python-api-docs.html): Builder -> network -> OnnxParser -> builder config
(workspace pool, one optimisation profile, timing cache) -> `build_serialized_network`.

FP16 is where TensorRT 10 and 11 part ways (https://docs.nvidia.com/deeplearning/tensorrt/latest/
api/migration/tensorrt-10x-to-11x-python-api-patterns.html):
- TensorRT 10: a weakly typed network and `BuilderFlag.FP16` lets the builder pick FP16 kernels.
- TensorRT 11: `BuilderFlag.FP16` is gone and every network is strongly typed (the
  STRONGLY_TYPED creation flag is "retained for API compatibility but ignored"), so precision
  must be in the ONNX graph itself: we convert the FP32 ONNX to FP16 (ModelOpt AutoCast when
  installed, else onnxconverter-common), keeping FP32 graph inputs and outputs so callers and
  the profile do not change. Without conversion tooling we build FP32 and say so.

Importing this module never imports TensorRT; `import_tensorrt()` does, on first use.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from models.runtime.engine_cache import atomic_write
from models.runtime.profiles import Profile, ProfileError, check_against_model

logger = logging.getLogger(__name__)

DEFAULT_WORKSPACE_BYTES = 1 << 30  # builder scratch; fractional-GPU replicas must stay small


class TensorRtUnavailable(RuntimeError):
    """The tensorrt package cannot be imported here."""


class EngineBuildError(RuntimeError):
    """The ONNX did not parse, or the builder returned no engine."""


@lru_cache(maxsize=1)
def import_tensorrt() -> ModuleType:
    try:
        return importlib.import_module("tensorrt")
    except Exception as error:  # ImportError, or OSError from a missing libnvinfer
        raise TensorRtUnavailable(f"tensorrt is not importable: {error}") from error


def tensorrt_version() -> str | None:
    try:
        return str(import_tensorrt().__version__)
    except TensorRtUnavailable:
        return None


def major_version(version: str) -> int:
    return int(version.split(".", 1)[0])


@lru_cache(maxsize=1)
def trt_logger() -> Any:
    """One ILogger for every Builder and Runtime in the process, forwarding to `logging`."""
    trt = import_tensorrt()
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.CRITICAL,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.DEBUG,  # TensorRT's INFO is a build diary, not service news
        severity.VERBOSE: logging.DEBUG,
    }

    class LoggingBridge(trt.ILogger):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, level: Any, message: str) -> None:
            logger.log(levels.get(level, logging.INFO), "tensorrt: %s", message)

    return LoggingBridge()


# --- Precision ---------------------------------------------------------------------------------


class Fp16Method(StrEnum):
    NONE = "none"  # FP32 engine
    BUILDER_FLAG = "builder_flag"  # TensorRT 10: BuilderFlag.FP16 on a weakly typed network
    FP16_ONNX = "strongly_typed_fp16_onnx"  # TensorRT 11: FP16-converted graph, strongly typed


@dataclass(frozen=True)
class PrecisionPlan:
    requested: str  # "fp16" or "fp32"
    precision: str  # what the engine is planned to run at; part of the cache key
    method: Fp16Method
    converters: tuple[str, ...] = ()  # FP16_ONNX only: converters to try, in order
    note: str = ""  # why the plan differs from the request, when it does


FP16_CONVERTERS = ("modelopt-autocast", "onnxconverter-common")
_CONVERTER_MODULES = {
    "modelopt-autocast": "modelopt.onnx.autocast",
    "onnxconverter-common": "onnxconverter_common",
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of answering
        return False


def available_fp16_converters() -> tuple[str, ...]:
    if not _importable("onnx"):
        return ()
    return tuple(name for name in FP16_CONVERTERS if _importable(_CONVERTER_MODULES[name]))


def plan_precision(requested: str, trt_major: int, converters: Sequence[str]) -> PrecisionPlan:
    """How to honour `requested` on this TensorRT major version with these converters."""
    if requested == "fp32":
        return PrecisionPlan(requested, "fp32", Fp16Method.NONE)
    if requested != "fp16":
        raise ValueError(f"precision must be 'fp16' or 'fp32', not {requested!r}")
    if trt_major < 11:
        return PrecisionPlan(requested, "fp16", Fp16Method.BUILDER_FLAG)
    if converters:
        return PrecisionPlan(requested, "fp16", Fp16Method.FP16_ONNX, tuple(converters))
    return PrecisionPlan(
        requested, "fp32", Fp16Method.NONE,
        note="fp16 requested, but TensorRT 11 needs an FP16 ONNX and neither nvidia-modelopt "
             "nor onnxconverter-common (with onnx) is installed: built FP32",
    )


def fp32_fallback(plan: PrecisionPlan, reason: str) -> PrecisionPlan:
    return PrecisionPlan(plan.requested, "fp32", Fp16Method.NONE,
                         note=f"fp16 build failed ({reason}): built FP32")


def fp16_onnx_bytes(onnx_path: Path, converter: str) -> bytes:
    """The model converted to FP16 with FP32 inputs and outputs (`keep_io_types=True`)."""
    if converter == "modelopt-autocast":
        # https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/
        # tensorrt-10x-to-11x-python-api-patterns.html (Migrating from Weak Typing ...)
        from modelopt.onnx.autocast import convert_to_mixed_precision

        converted = convert_to_mixed_precision(
            onnx_path=str(onnx_path), low_precision_type="fp16", keep_io_types=True
        )
    elif converter == "onnxconverter-common":
        import onnx
        from onnxconverter_common import float16

        # Its default op block list keeps Resize, TopK, Min/Max, ... in FP32 behind Casts.
        converted = float16.convert_float_to_float16(onnx.load(str(onnx_path)),
                                                     keep_io_types=True)
    else:
        raise ValueError(f"unknown FP16 converter {converter!r}")
    return bytes(converted.SerializeToString())


# --- Building ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltEngine:
    engine: bytes  # the serialized plan
    precision: str  # what it runs at
    build_time_s: float
    builder: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def build_engine(
    onnx_path: Path,
    profile: Profile,
    plan: PrecisionPlan,
    *,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    timing_cache_path: Path | None = None,
) -> BuiltEngine:
    """Parse, configure and build one engine; EngineBuildError when TensorRT says no."""
    trt = import_tensorrt()
    major = major_version(trt.__version__)
    notes = [plan.note] if plan.note else []
    builder = trt.Builder(trt_logger())
    method, precision = plan.method, plan.precision
    if method is Fp16Method.BUILDER_FLAG and not getattr(builder, "platform_has_fast_fp16", True):
        notes.append("fp16 requested, but this GPU has no fast FP16: built FP32")
        method, precision = Fp16Method.NONE, "fp32"

    model, converter = _model_bytes(onnx_path, plan, method)
    # Flags 0: TensorRT 10 then builds a weakly typed network, which BuilderFlag.FP16 needs
    # (the flag is rejected on strongly typed networks); TensorRT 11 is strongly typed anyway.
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, trt_logger())
    if not parser.parse(model, str(onnx_path)):
        errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path.name}: {errors}")

    inputs = [network.get_input(index) for index in range(network.num_inputs)]
    try:
        check_against_model(profile, {tensor.name: tuple(tensor.shape) for tensor in inputs})
    except ProfileError as error:
        raise EngineBuildError(f"{onnx_path.name}: {error}") from error
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if method is Fp16Method.BUILDER_FLAG:
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation_profile = builder.create_optimization_profile()
    for name, shape_range in profile.items():
        optimisation_profile.set_shape(name, shape_range.min, shape_range.opt, shape_range.max)
    config.add_optimization_profile(optimisation_profile)
    timing_cache_loaded = _attach_timing_cache(config, timing_cache_path, notes)

    logger.warning("building TensorRT %s engine for %s (%s); this takes minutes",
                   precision, onnx_path.name, method.value)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_time_s = time.perf_counter() - start
    if serialized is None:
        raise EngineBuildError(f"build_serialized_network returned None for {onnx_path.name} "
                               "(see the tensorrt log lines above)")
    if timing_cache_path is not None:
        _save_timing_cache(config, timing_cache_path)
    settings: dict[str, str | int | float | bool | None] = {
        "tensorrt_version": str(trt.__version__),
        "strongly_typed": major >= 11,
        "fp16_method": method.value,
        "fp16_converter": converter,
        "workspace_bytes": workspace_bytes,
        "builder_optimization_level": int(config.builder_optimization_level),
        "tf32": _flag_set(trt, config, "TF32"),
        "timing_cache": timing_cache_path.name if timing_cache_path else None,
        "timing_cache_loaded": timing_cache_loaded,
    }
    return BuiltEngine(bytes(serialized), precision, build_time_s, settings, tuple(notes))


def _model_bytes(
    onnx_path: Path, plan: PrecisionPlan, method: Fp16Method
) -> tuple[bytes, str | None]:
    if method is not Fp16Method.FP16_ONNX:
        return onnx_path.read_bytes(), None
    failures = []
    for converter in plan.converters:
        try:
            return fp16_onnx_bytes(onnx_path, converter), converter
        except Exception as error:  # a converter's own failure; the next one may cope
            logger.warning("FP16 conversion of %s with %s failed: %s",
                           onnx_path.name, converter, error)
            failures.append(f"{converter}: {error}")
    raise EngineBuildError("no FP16 conversion succeeded: " + "; ".join(failures))


def _flag_set(trt: ModuleType, config: Any, name: str) -> bool | None:
    flag = getattr(trt.BuilderFlag, name, None)
    return None if flag is None else bool(config.get_flag(flag))


def _attach_timing_cache(config: Any, path: Path | None, notes: list[str]) -> bool:
    """Start from the persisted timing cache when it loads. TensorRT verifies its header against
    this device (`set_timing_cache(cache, ignore_mismatch=False)`, .../python-api/infer/Core/
    BuilderConfig.html); a rejected or unreadable cache only means a slower build."""
    if path is None or not path.exists():
        config.set_timing_cache(config.create_timing_cache(b""), False)
        return False
    try:
        cache = config.create_timing_cache(path.read_bytes())
        if cache is not None and config.set_timing_cache(cache, False):
            return True
    except Exception as error:  # TensorRT raises RuntimeError/TypeError on garbage input
        logger.warning("timing cache %s unreadable (%s); starting an empty one", path, error)
    notes.append(f"timing cache {path.name} rejected; built with an empty one")
    config.set_timing_cache(config.create_timing_cache(b""), False)
    return False


def _save_timing_cache(config: Any, path: Path) -> None:
    """Merge with what other builds wrote meanwhile (`ITimingCache.combine`), then persist."""
    merged = config.get_timing_cache()
    if path.exists():
        with contextlib.suppress(Exception):  # a corrupt file on disk is simply replaced
            on_disk = config.create_timing_cache(path.read_bytes())
            if on_disk is not None:
                merged.combine(on_disk, False)
    atomic_write(path, bytes(merged.serialize()))
