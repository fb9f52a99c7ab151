"""Runtimes that stand in front of another: one whose TensorRT engine is still to be built, and one
that adds why it was chosen to `info.detail`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from models.runtime.base import InferenceRuntime, Precision, RuntimeInfo
from models.runtime.tensorrt import TensorRtEngineSource

logger = logging.getLogger(__name__)


def log_choice(runtime: InferenceRuntime) -> InferenceRuntime:
    """The one INFO line per model saying what runs it."""
    info = runtime.info
    logger.info("model %s: runtime=%s device=%s precision=%s (%s)", info.model, info.runtime,
                info.device, info.precision, info.detail)
    return runtime


class WithNote:
    """A runtime whose `info.detail` also says why it was chosen (e.g. the fallback reason)."""

    def __init__(self, inner: InferenceRuntime, note: str) -> None:
        self._inner = inner
        self._info = replace(inner.info, detail=f"{inner.info.detail}; {note}")

    @property
    def info(self) -> RuntimeInfo:
        return self._info

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._inner.run(inputs)


class BuildOnFirstUse:
    """A TensorRT runtime whose engine was not cached when the replica started.

    Nothing is built at construction, so the replica passes its health check. The first `run`
    starts the build on a background thread and answers, until the engine is ready, with ONNX
    Runtime (`fallback`): a build takes minutes, and a request - or the event loop serving the
    health check - must not wait for it. A failed build leaves ONNX Runtime in place for good,
    logged with the reason, rather than a replica that fails every request. `prepare()` builds
    now and waits (warm-up, tests).
    """

    def __init__(
        self, source: TensorRtEngineSource, fallback: Callable[[str], InferenceRuntime]
    ) -> None:
        self._source = source
        self._fallback = fallback
        self._final: InferenceRuntime | None = None  # the engine, or ORT after a failed build
        self._interim: InferenceRuntime | None = None  # ORT while the build runs
        self._builder: threading.Thread | None = None
        self._built = threading.Event()
        self._lock = threading.Lock()
        precision: Precision = "fp16" if source.plan.precision == "fp16" else "fp32"
        self._planned = RuntimeInfo(
            source.model_name, "tensorrt", source.gpu.label, precision,
            detail=f"engine not cached ({source.miss_reason}); builds on first use",
        )
        logger.warning(
            "%s: NO CACHED TENSORRT ENGINE - the first request starts a build (minutes), "
            "served by onnxruntime meanwhile. Run `curator models build-engines` before "
            "deploying. (%s)", source.model_name, source.miss_reason,
        )

    @property
    def info(self) -> RuntimeInfo:
        if self._final is not None:
            return self._final.info
        if self._interim is not None:
            return self._interim.info
        return self._planned

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        runtime = self._final
        if runtime is None:
            with self._lock:
                self._start_build()
                runtime = self._final
                if runtime is None:
                    if self._interim is None:
                        self._interim = log_choice(
                            self._fallback("interim, while the TensorRT engine builds"))
                    runtime = self._interim
        return runtime.run(inputs)

    def prepare(self, timeout_s: float | None = None) -> InferenceRuntime:
        """Start the build if needed and wait for it: the engine, or ONNX Runtime if it failed.
        TimeoutError when `timeout_s` passes first."""
        with self._lock:
            self._start_build()
        if not self._built.wait(timeout_s):
            raise TimeoutError(f"{self._source.model_name}: engine build still running")
        assert self._final is not None  # set before the event
        return self._final

    def _start_build(self) -> None:  # under self._lock
        if self._builder is None:
            self._builder = threading.Thread(
                target=self._build, name=f"tensorrt-build-{self._source.model_name}", daemon=True
            )
            self._builder.start()

    def _build(self) -> None:
        runtime: InferenceRuntime
        try:
            runtime = self._source.load_or_build()
        except Exception as error:  # see class docstring: degrade, never crash
            logger.exception("%s: TensorRT engine build failed; staying on onnxruntime",
                             self._source.model_name)
            runtime = self._fallback(f"TensorRT build failed: {error}")
        with self._lock:
            self._final = log_choice(runtime)
            self._interim = None  # its session is released once in-flight runs finish
        self._built.set()
