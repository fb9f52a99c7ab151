"""A stand-in `tensorrt` module with just the builder surface `tensorrt_build` calls, so the build
and cache orchestration runs on CPU. It records what it was asked; it optimises nothing. The real
API is exercised by the GPU tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any


@dataclass
class Behaviour:
    """What the fake builder does; tests flip these."""

    network_inputs: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {"images": (-1, 3, -1, -1)})
    fail_parse: bool = False
    fail_build_when_model_is: bytes | None = None  # build_serialized_network returns None
    reject_timing_cache: bool = False
    parsed_models: list[bytes] = field(default_factory=list)
    flags_set: list[str] = field(default_factory=list)
    profiles: list[dict[str, tuple[Any, Any, Any]]] = field(default_factory=list)
    builds: int = 0


class _Severity:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)


class ILogger:
    Severity = _Severity

    def __init__(self) -> None:
        pass


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)

    def serialize(self) -> bytes:
        return self.data or b"timings"

    def combine(self, other: _TimingCache, ignore_mismatch: bool) -> bool:
        self.data = self.data + b"|" + other.data
        return True


def make_fake_tensorrt(version: str, behaviour: Behaviour) -> ModuleType:
    trt = ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    flags = ["TF32"] + (["FP16"] if version.startswith("10.") else [])
    trt.BuilderFlag = SimpleNamespace(**{name: name for name in flags})  # type: ignore[attr-defined]
    trt.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")  # type: ignore[attr-defined]
    trt.ILogger = ILogger  # type: ignore[attr-defined]

    class Network:
        def __init__(self) -> None:
            self.inputs: list[SimpleNamespace] = []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, index: int) -> SimpleNamespace:
            return self.inputs[index]

    class OnnxParser:
        num_errors = 1

        def __init__(self, network: Network, logger: Any) -> None:
            self.network = network

        def parse(self, model: bytes, path: str | None = None) -> bool:
            behaviour.parsed_models.append(model)
            if behaviour.fail_parse:
                return False
            self.network.inputs = [SimpleNamespace(name=name, shape=shape)
                                   for name, shape in behaviour.network_inputs.items()]
            return True

        def get_error(self, index: int) -> str:
            return "Unsupported operator FancyOp"

    class Profile(dict[str, tuple[Any, Any, Any]]):
        def set_shape(self, name: str, low: Any, opt: Any, high: Any) -> None:
            self[name] = (low, opt, high)

    class Config:
        builder_optimization_level = 3

        def __init__(self) -> None:
            self.flags: set[str] = set()
            self.timing_cache: _TimingCache | None = None

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            self.workspace = size

        def set_flag(self, flag: str) -> None:
            behaviour.flags_set.append(flag)
            self.flags.add(flag)

        def get_flag(self, flag: str) -> bool:
            return flag in self.flags

        def add_optimization_profile(self, profile: Profile) -> int:
            behaviour.profiles.append(dict(profile))
            return 0

        def create_timing_cache(self, data: bytes) -> _TimingCache:
            if behaviour.reject_timing_cache and data:
                raise RuntimeError("timing cache header mismatch")
            return _TimingCache(data)

        def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
            self.timing_cache = cache
            return True

        def get_timing_cache(self) -> _TimingCache | None:
            return self.timing_cache

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger: Any) -> None:
            self.network: Network | None = None

        def create_network(self, flags: int) -> Network:
            self.network = Network()
            return self.network

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            behaviour.builds += 1
            model = behaviour.parsed_models[-1]
            if model == behaviour.fail_build_when_model_is:
                return None
            return b"PLAN:" + model[:16] + b":" + ",".join(sorted(config.flags)).encode()

    trt.Builder = Builder  # type: ignore[attr-defined]
    trt.OnnxParser = OnnxParser  # type: ignore[attr-defined]
    return trt
