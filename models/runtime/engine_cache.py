"""Where built TensorRT engines are kept, and how we know one still fits this machine.

An engine is a plan for one GPU model and one TensorRT version, and nothing inside it says which
GPU built it; deserialising a foreign plan fails at best. So each engine is filed under a key of
everything it depends on (ONNX sha256, GPU name, compute capability, TensorRT version, precision,
profile shapes) and carries a JSON sidecar recording that key, the engine's own sha256, build time
and builder settings. Loading trusts an engine only when its sidecar matches the key and the
file's hash matches the sidecar; anything else is reported, never raised, so the caller rebuilds
or falls back instead of crashing a replica.

Pure Python: no TensorRT or CUDA import, so all of this is tested on CPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from models.runtime.profiles import Profile, ShapeRange

logger = logging.getLogger(__name__)

SIDECAR_SCHEMA = 1  # bump when the sidecar's meaning changes; older sidecars then read as stale
ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".engine.json"

BuilderSettings = Mapping[str, str | int | float | bool | None]


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on. Equal keys mean "this engine fits"."""

    onnx_sha256: str
    gpu_name: str
    compute_capability: str  # "9.0"
    tensorrt_version: str  # full version, e.g. "10.13.3.9": plans do not cross versions
    precision: str  # the precision asked for ("fp16", "fp32")
    profile: tuple[tuple[str, ShapeRange], ...]  # sorted by input name

    @classmethod
    def create(
        cls,
        *,
        onnx_sha256: str,
        gpu_name: str,
        compute_capability: str,
        tensorrt_version: str,
        precision: str,
        profile: Profile,
    ) -> EngineKey:
        return cls(onnx_sha256, gpu_name, compute_capability, tensorrt_version, precision,
                   tuple(sorted(profile.items(), key=lambda item: item[0])))

    def as_dict(self) -> dict[str, Any]:
        return {
            "onnx_sha256": self.onnx_sha256,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "tensorrt_version": self.tensorrt_version,
            "precision": self.precision,
            "profile": {name: shape_range.as_lists() for name, shape_range in self.profile},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EngineKey:
        profile = {
            name: ShapeRange(tuple(ranges["min"]), tuple(ranges["opt"]), tuple(ranges["max"]))
            for name, ranges in raw["profile"].items()
        }
        return cls.create(
            onnx_sha256=str(raw["onnx_sha256"]),
            gpu_name=str(raw["gpu_name"]),
            compute_capability=str(raw["compute_capability"]),
            tensorrt_version=str(raw["tensorrt_version"]),
            precision=str(raw["precision"]),
            profile=profile,
        )

    def digest(self) -> str:
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def file_stem(self, model: str) -> str:
        """Readable prefix for people listing the directory; the digest makes it unique."""
        safe_model = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
        return f"{safe_model}-{self.precision}-{self.digest()[:24]}"

    def differences(self, other: EngineKey) -> list[str]:
        mine, theirs = self.as_dict(), other.as_dict()
        return [name for name in mine if mine[name] != theirs[name]]


@dataclass(frozen=True)
class EngineSidecar:
    """The JSON file beside each engine: its key, its hash, and how it was built."""

    model: str
    key: EngineKey
    engine_file: str  # file name, relative to the sidecar's directory
    engine_sha256: str
    engine_bytes: int
    built_precision: str  # what the engine really runs at (fp16 may have fallen back to fp32)
    build_time_s: float
    built_at: str  # ISO 8601, UTC
    builder: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_json(self) -> str:
        document = {
            "schema": SIDECAR_SCHEMA,
            "model": self.model,
            "key": self.key.as_dict(),
            "key_digest": self.key.digest(),
            "engine_file": self.engine_file,
            "engine_sha256": self.engine_sha256,
            "engine_bytes": self.engine_bytes,
            "built_precision": self.built_precision,
            "build_time_s": round(self.build_time_s, 3),
            "built_at": self.built_at,
            "builder": dict(self.builder),
            "notes": list(self.notes),
        }
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EngineSidecar:
        """SidecarError for anything that is not a complete sidecar of the current schema."""
        try:
            raw = json.loads(text)
            if raw.get("schema") != SIDECAR_SCHEMA:
                raise SidecarError(f"sidecar schema {raw.get('schema')!r}, want {SIDECAR_SCHEMA}")
            key = EngineKey.from_dict(raw["key"])
            if raw.get("key_digest") != key.digest():
                raise SidecarError("sidecar key_digest does not match its key (edited by hand?)")
            return cls(
                model=str(raw["model"]),
                key=key,
                engine_file=str(raw["engine_file"]),
                engine_sha256=str(raw["engine_sha256"]),
                engine_bytes=int(raw["engine_bytes"]),
                built_precision=str(raw["built_precision"]),
                build_time_s=float(raw["build_time_s"]),
                built_at=str(raw["built_at"]),
                builder=dict(raw.get("builder", {})),
                notes=tuple(str(note) for note in raw.get("notes", [])),
            )
        except SidecarError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise SidecarError(f"unreadable sidecar: {type(error).__name__}: {error}") from error


class SidecarError(ValueError):
    pass


class CacheStatus(StrEnum):
    HIT = "hit"  # engine and sidecar present, key and hash match
    MISSING = "missing"  # no engine for this key yet
    STALE = "stale"  # something is there, but built for another key (or provenance unknown)
    CORRUPT = "corrupt"  # sidecar unreadable, or the engine's bytes are not what was stored


@dataclass(frozen=True)
class CacheLookup:
    status: CacheStatus
    reason: str
    engine: bytes | None = None  # set on HIT only
    sidecar: EngineSidecar | None = None  # set whenever a readable sidecar was found


class EngineCache:
    """A directory of `<model>-<precision>-<digest>.engine` files and their `.engine.json`
    sidecars, plus one TensorRT timing cache per GPU model and TensorRT version."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def engine_path(self, key: EngineKey, model: str) -> Path:
        return self.directory / f"{key.file_stem(model)}{ENGINE_SUFFIX}"

    def sidecar_path(self, key: EngineKey, model: str) -> Path:
        return self.directory / f"{key.file_stem(model)}{SIDECAR_SUFFIX}"

    def timing_cache_path(self, gpu_name: str, compute_capability: str, trt_version: str) -> Path:
        """Timing caches are keyed like engines minus the model: tactic timings are per GPU and
        TensorRT version, and sharing them across models is what makes rebuilds fast."""
        raw = f"{gpu_name}|{compute_capability}|{trt_version}"
        return self.directory / f"timing-{hashlib.sha256(raw.encode()).hexdigest()[:24]}.cache"

    def lookup(self, key: EngineKey, model: str) -> CacheLookup:
        engine_path = self.engine_path(key, model)
        sidecar_path = self.sidecar_path(key, model)
        if not sidecar_path.exists():
            if engine_path.exists():
                return CacheLookup(CacheStatus.STALE, f"{engine_path.name} has no sidecar; "
                                   "its provenance is unknown")
            return CacheLookup(CacheStatus.MISSING, f"no engine cached as {engine_path.name}")
        try:
            sidecar = EngineSidecar.from_json(sidecar_path.read_text())
        except (OSError, UnicodeDecodeError, SidecarError) as error:
            return CacheLookup(CacheStatus.CORRUPT, f"{sidecar_path.name}: {error}")
        if sidecar.key != key:
            changed = ", ".join(key.differences(sidecar.key)) or "profile order"
            return CacheLookup(CacheStatus.STALE, f"{sidecar_path.name} was built for a "
                               f"different {changed}", sidecar=sidecar)
        if not engine_path.exists():
            return CacheLookup(CacheStatus.MISSING, f"{sidecar_path.name} has no engine file",
                               sidecar=sidecar)
        try:
            engine = engine_path.read_bytes()
        except OSError as error:
            return CacheLookup(CacheStatus.CORRUPT, f"{engine_path.name}: {error}",
                               sidecar=sidecar)
        if len(engine) != sidecar.engine_bytes or sha256_bytes(engine) != sidecar.engine_sha256:
            return CacheLookup(CacheStatus.CORRUPT, f"{engine_path.name} does not match the "
                               "size and sha256 its sidecar recorded", sidecar=sidecar)
        return CacheLookup(CacheStatus.HIT, f"cached engine {engine_path.name}", engine, sidecar)

    def store(
        self,
        key: EngineKey,
        model: str,
        engine: bytes,
        *,
        built_precision: str,
        build_time_s: float,
        builder: BuilderSettings,
        notes: tuple[str, ...] = (),
    ) -> EngineSidecar:
        """Write the engine, then its sidecar (the sidecar is the commit: a reader that sees a
        new engine next to an old sidecar gets a hash mismatch, never a wrong engine)."""
        engine_path = self.engine_path(key, model)
        sidecar = EngineSidecar(
            model=model,
            key=key,
            engine_file=engine_path.name,
            engine_sha256=sha256_bytes(engine),
            engine_bytes=len(engine),
            built_precision=built_precision,
            build_time_s=build_time_s,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            builder=dict(builder),
            notes=notes,
        )
        atomic_write(engine_path, engine)
        atomic_write(self.sidecar_path(key, model), sidecar.to_json().encode())
        return sidecar

    def discard(self, key: EngineKey, model: str) -> None:
        for path in (self.sidecar_path(key, model), self.engine_path(key, model)):
            path.unlink(missing_ok=True)

    def entries(self) -> list[tuple[Path, EngineSidecar | None]]:
        """Every engine file in the directory with its sidecar (None when unreadable)."""
        found: list[tuple[Path, EngineSidecar | None]] = []
        for engine_path in sorted(self.directory.glob(f"*{ENGINE_SUFFIX}")):
            sidecar_path = engine_path.with_name(engine_path.name + ".json")
            try:
                found.append((engine_path, EngineSidecar.from_json(sidecar_path.read_text())))
            except (OSError, UnicodeDecodeError, SidecarError):
                found.append((engine_path, None))
        return found

    @contextlib.contextmanager
    def build_lock(self, key: EngineKey, model: str) -> Iterator[None]:
        """Exclusive per-engine lock across processes: replicas on one node that all miss the
        cache build once, and the others wait and then load that engine."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_path = self.directory / f"{key.file_stem(model)}.lock"
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write beside the target and rename over it, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
