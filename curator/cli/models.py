"""`curator models ...`: fetch the model artifacts, list them, and build TensorRT engines ahead of a
deployment (so no Serve replica ever builds one on its first request).

Wired into `curator.cli` with `add_models_commands(verbs)`; each sub-verb sets `run`, which
returns the process exit status, like the other verbs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from models.runtime.profiles import DEFAULT_MAX_BATCH

EXIT_OK = 0
EXIT_FAILED = 1  # some engine did not build
EXIT_UNSUPPORTED = 2  # no GPU or no TensorRT on this machine


def add_models_commands(subparsers: Any) -> None:
    """Add the `models` verb and its sub-verbs to the `curator` command's subparsers."""
    models = subparsers.add_parser("models", help="model artifacts and TensorRT engines")
    verbs = models.add_subparsers(dest="models_verb", required=True)

    fetch = verbs.add_parser("fetch", help="download and verify every model artifact")
    fetch.set_defaults(run=_fetch)

    listing = verbs.add_parser(
        "list", help="artifacts, their source wheels and local state; cached engines"
    )
    listing.add_argument("--engine-dir", type=Path, default=None)
    listing.set_defaults(run=_list)

    build = verbs.add_parser(
        "build-engines",
        help="build the TensorRT engine of every ONNX artifact for this GPU (needs TensorRT)",
    )
    build.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                       help="profile max batch: at least the Serve batcher's max_batch_size")
    build.add_argument("--opt-batch", type=int, default=None,
                       help="batch size the tactics are tuned for (default: --max-batch)")
    build.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    build.add_argument("--engine-dir", type=Path, default=None,
                       help="engine cache directory (default: CURATOR_ENGINE_DIR or beside "
                            "the model artifacts)")
    build.add_argument("--model", action="append", default=None,
                       help="only this artifact (repeatable)")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    build.set_defaults(run=_build_engines)


def _fetch(_: argparse.Namespace) -> int:
    from models.artifacts import fetch_all

    for path in fetch_all():
        print(path)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from models.artifacts import all_artifacts, sha256_of
    from models.runtime.engine_cache import EngineCache
    from models.runtime.select import default_engine_dir

    rows = [("name", "source wheel", "sha256", "licence", "local file")]
    for artifact in all_artifacts():
        path = artifact.local_path
        if not path.is_file():
            state = "missing (curator models fetch)"
        elif sha256_of(path) != artifact.sha256:
            state = f"ALTERED {path}"
        else:
            state = str(path)
        if artifact.candidate:
            state += "  (a benchmark candidate, not served)"
        rows.append((artifact.name, f"{artifact.wheel_spec}:{artifact.member}",
                     artifact.sha256[:16], artifact.licence, state))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[4])

    cache = EngineCache(args.engine_dir or default_engine_dir())
    entries = cache.entries() if cache.directory.is_dir() else []
    print(f"\nTensorRT engines in {cache.directory}: {len(entries) or 'none'}")
    for path, sidecar in entries:
        if sidecar is None:
            print(f"  {path.name}  (sidecar missing or unreadable: will be rebuilt)")
            continue
        key = sidecar.key
        print(f"  {path.name}  {sidecar.model} {sidecar.built_precision} on {key.gpu_name} "
              f"(sm {key.compute_capability}), TensorRT {key.tensorrt_version}, "
              f"built {sidecar.built_at}")
    return EXIT_OK


def _build_engines(args: argparse.Namespace) -> int:
    from models.artifacts import all_artifacts
    from models.runtime.engine_cache import EngineCache
    from models.runtime.profiles import (
        ProfileError,
        batch_profile,
        default_sample_shape,
        profile_for,
    )
    from models.runtime.select import default_engine_dir
    from models.runtime.tensorrt import TensorRtEngineSource
    from models.runtime.tensorrt_build import tensorrt_version
    from models.runtime.torch_device import gpu_identity

    gpu = gpu_identity()
    if gpu is None:
        print("curator models build-engines: no CUDA GPU is visible; engines are built on the "
              "GPU model that will run them", file=sys.stderr)
        return EXIT_UNSUPPORTED
    if tensorrt_version() is None:
        print("curator models build-engines: TensorRT is not installed "
              "(pip install -e '.[gpu]')", file=sys.stderr)
        return EXIT_UNSUPPORTED
    try:
        batch = batch_profile(args.max_batch, args.opt_batch)
    except ProfileError as error:
        print(f"curator models build-engines: {error}", file=sys.stderr)
        return EXIT_UNSUPPORTED

    cache = EngineCache(args.engine_dir or default_engine_dir())
    onnx_artifacts = [artifact for artifact in all_artifacts()
                      if artifact.member.endswith(".onnx") and not artifact.candidate
                      and (args.model is None or artifact.name in args.model)]
    failed = 0
    for artifact in onnx_artifacts:
        shape = default_sample_shape(artifact)
        if shape is None or not artifact.input_name:
            print(f"{artifact.name}: skipped, no engine input shape registered")
            continue
        try:
            source = TensorRtEngineSource(
                artifact.name, artifact.path(), profile_for(artifact.input_name, batch, shape),
                precision=args.precision, cache=cache, gpu=gpu,
            )
            sidecar = source.build(force=args.force)
        except Exception as error:  # report every model, then fail the command as a whole
            print(f"{artifact.name}: FAILED: {error}", file=sys.stderr)
            failed += 1
            continue
        notes = f"  ({'; '.join(sidecar.notes)})" if sidecar.notes else ""
        print(f"{artifact.name}: {sidecar.built_precision} engine for {gpu.name}, "
              f"built {sidecar.built_at} in {sidecar.build_time_s:.0f} s -> "
              f"{source.engine_path}{notes}")
    return EXIT_FAILED if failed else EXIT_OK
