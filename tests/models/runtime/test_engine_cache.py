"""Engine cache keys, sidecars and the verdicts of a lookup: all pure Python, no TensorRT."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from models.runtime.engine_cache import (
    CacheStatus,
    EngineCache,
    EngineKey,
    EngineSidecar,
    SidecarError,
    sha256_bytes,
)
from models.runtime.profiles import ShapeRange

MODEL = "nudenet-320n"
PROFILE = {"images": ShapeRange((1, 3, 320, 320), (8, 3, 320, 320), (16, 3, 320, 320))}
ENGINE = b"\x00serialized plan\xff" * 64
BUILDER: dict[str, str | int | float | bool | None] = {
    "tensorrt_version": "10.13.3.9", "fp16_method": "builder_flag", "workspace_bytes": 1,
}


def make_key(**changes: object) -> EngineKey:
    fields: dict[str, object] = {
        "onnx_sha256": "c15d8273" * 8,
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0",
        "tensorrt_version": "10.13.3.9",
        "precision": "fp16",
        "profile": PROFILE,
    }
    fields.update(changes)
    return EngineKey.create(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "090f04ab" * 8},
        {"gpu_name": "NVIDIA A10G"},
        {"compute_capability": "8.6"},
        {"tensorrt_version": "10.13.3.10"},
        {"tensorrt_version": "11.1.0.106"},
        {"precision": "fp32"},
        {"profile": {"images": ShapeRange((1, 3, 320, 320), (16, 3, 320, 320),
                                          (16, 3, 320, 320))}},
        {"profile": {"images": ShapeRange((1, 3, 320, 320), (8, 3, 320, 320),
                                          (32, 3, 320, 320))}},
        {"profile": {"images": ShapeRange((1, 3, 320, 320), (8, 3, 320, 320),
                                          (16, 3, 640, 640))}},
        {"profile": {"pixels": PROFILE["images"]}},
    ],
    ids=["onnx", "gpu-name", "compute-capability", "trt-patch", "trt-major", "precision",
         "profile-opt", "profile-max", "profile-spatial", "profile-input-name"],
)
def test_every_key_component_changes_the_key(change: dict[str, object]) -> None:
    base, changed = make_key(), make_key(**change)
    assert base != changed
    assert base.digest() != changed.digest()
    assert base.file_stem(MODEL) != changed.file_stem(MODEL)


def test_key_ignores_profile_insertion_order() -> None:
    first = {"a": PROFILE["images"], "b": PROFILE["images"]}
    second = {"b": PROFILE["images"], "a": PROFILE["images"]}
    assert make_key(profile=first).digest() == make_key(profile=second).digest()


def test_key_round_trips_through_its_dict() -> None:
    key = make_key()
    assert EngineKey.from_dict(json.loads(json.dumps(key.as_dict()))) == key


def test_file_names_are_safe_and_readable() -> None:
    stem = make_key().file_stem("weird/name with spaces")
    assert "/" not in stem and " " not in stem
    assert stem.startswith("weird_name_with_spaces-fp16-")


def test_store_then_lookup_is_a_hit(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path / "engines"), make_key()
    stored = cache.store(key, MODEL, ENGINE, built_precision="fp16", build_time_s=41.7,
                         builder=BUILDER, notes=("a note",))
    lookup = cache.lookup(key, MODEL)
    assert lookup.status is CacheStatus.HIT
    assert lookup.engine == ENGINE
    assert lookup.sidecar == stored
    assert stored.engine_sha256 == sha256_bytes(ENGINE)
    assert cache.engine_path(key, MODEL).read_bytes() == ENGINE
    assert not list(cache.directory.glob("*.partial"))


def test_sidecar_json_round_trip_records_everything(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    stored = cache.store(key, MODEL, ENGINE, built_precision="fp32", build_time_s=3.25,
                         builder=BUILDER, notes=("fp16 build failed: built FP32",))
    raw = json.loads(cache.sidecar_path(key, MODEL).read_text())
    assert raw["key"]["gpu_name"] == "NVIDIA H100 80GB HBM3"
    assert raw["key"]["profile"]["images"]["max"] == [16, 3, 320, 320]
    assert raw["builder"]["fp16_method"] == "builder_flag"
    assert raw["build_time_s"] == 3.25 and raw["built_precision"] == "fp32"
    assert raw["built_at"].endswith("+00:00")
    assert EngineSidecar.from_json(stored.to_json()) == stored


def test_nothing_there_is_missing(tmp_path: Path) -> None:
    assert EngineCache(tmp_path).lookup(make_key(), MODEL).status is CacheStatus.MISSING


def test_sidecar_without_engine_is_missing(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, MODEL, ENGINE, built_precision="fp16", build_time_s=1, builder=BUILDER)
    cache.engine_path(key, MODEL).unlink()
    assert cache.lookup(key, MODEL).status is CacheStatus.MISSING


def test_engine_without_sidecar_is_stale(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, MODEL, ENGINE, built_precision="fp16", build_time_s=1, builder=BUILDER)
    cache.sidecar_path(key, MODEL).unlink()
    lookup = cache.lookup(key, MODEL)
    assert lookup.status is CacheStatus.STALE
    assert "no sidecar" in lookup.reason


def test_sidecar_for_another_gpu_is_stale(tmp_path: Path) -> None:
    """An engine copied from another machine under this key's file name is not trusted."""
    cache, key = EngineCache(tmp_path), make_key()
    foreign = make_key(gpu_name="NVIDIA L4", compute_capability="8.9")
    cache.store(foreign, MODEL, ENGINE, built_precision="fp16", build_time_s=1, builder=BUILDER)
    for source, target in ((cache.engine_path(foreign, MODEL), cache.engine_path(key, MODEL)),
                           (cache.sidecar_path(foreign, MODEL), cache.sidecar_path(key, MODEL))):
        source.rename(target)
    lookup = cache.lookup(key, MODEL)
    assert lookup.status is CacheStatus.STALE
    assert "gpu_name" in lookup.reason and "compute_capability" in lookup.reason


@pytest.mark.parametrize(
    "damage",
    ["truncate", "flip", "append"],
)
def test_damaged_engine_is_corrupt(tmp_path: Path, damage: str) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, MODEL, ENGINE, built_precision="fp16", build_time_s=1, builder=BUILDER)
    path = cache.engine_path(key, MODEL)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[10] ^= 0xFF
    else:
        data += b"tail"
    path.write_bytes(bytes(data))
    lookup = cache.lookup(key, MODEL)
    assert lookup.status is CacheStatus.CORRUPT
    assert lookup.engine is None


@pytest.mark.parametrize(
    "content",
    ["", "{not json", "[]", json.dumps({"schema": 0}), json.dumps({"schema": 1, "model": "x"})],
    ids=["empty", "syntax", "list", "old-schema", "incomplete"],
)
def test_unreadable_sidecar_is_corrupt(tmp_path: Path, content: str) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, MODEL, ENGINE, built_precision="fp16", build_time_s=1, builder=BUILDER)
    cache.sidecar_path(key, MODEL).write_text(content)
    assert cache.lookup(key, MODEL).status is CacheStatus.CORRUPT


def test_hand_edited_sidecar_key_is_caught(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, MODEL, ENGINE, built_precision="fp16", build_time_s=1, builder=BUILDER)
    path = cache.sidecar_path(key, MODEL)
    raw = json.loads(path.read_text())
    raw["key"]["tensorrt_version"] = "9.9"
    path.write_text(json.dumps(raw))
    with pytest.raises(SidecarError, match="key_digest"):
        EngineSidecar.from_json(path.read_text())
    assert cache.lookup(key, MODEL).status is CacheStatus.CORRUPT


def test_restore_overwrites_and_discard_removes(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path), make_key()
    cache.store(key, MODEL, b"old", built_precision="fp16", build_time_s=1, builder=BUILDER)
    cache.store(key, MODEL, ENGINE, built_precision="fp16", build_time_s=2, builder=BUILDER)
    assert cache.lookup(key, MODEL).engine == ENGINE
    assert [path.name for path, _ in cache.entries()] == [cache.engine_path(key, MODEL).name]
    cache.discard(key, MODEL)
    assert cache.lookup(key, MODEL).status is CacheStatus.MISSING
    assert cache.entries() == []


def test_timing_cache_is_per_gpu_and_tensorrt_version(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    h100 = cache.timing_cache_path("NVIDIA H100 80GB HBM3", "9.0", "10.13.3.9")
    assert h100 == cache.timing_cache_path("NVIDIA H100 80GB HBM3", "9.0", "10.13.3.9")
    assert h100 != cache.timing_cache_path("NVIDIA L4", "8.9", "10.13.3.9")
    assert h100 != cache.timing_cache_path("NVIDIA H100 80GB HBM3", "9.0", "11.1.0.106")


def test_build_lock_excludes_other_holders(tmp_path: Path) -> None:
    cache, key = EngineCache(tmp_path / "new"), make_key()
    lock_file = cache.directory / f"{key.file_stem(MODEL)}.lock"
    with (cache.build_lock(key, MODEL), lock_file.open("a") as other,
          pytest.raises(BlockingIOError)):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with lock_file.open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit
