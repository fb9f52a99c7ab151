"""`curator batch MANIFEST --out DIR`: the online graph's stages over a manifest of images, with
Ray Data (graphs/batch.py), writing the answer `POST /v1/assess` would give each listing.

Wired into `curator.cli` with `add_batch_commands(verbs)`. Everything that can be wrong with
the input (manifest, serve config, policies, options, output folder) is checked before Ray
starts, and exits 2 with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from curator.contracts.errors import CuratorError
from graphs.batch_options import BatchOptions
from graphs.serve_config import DEFAULT_SERVE_CONFIG

EXIT_OK = 0
EXIT_USAGE = 2  # the input is unusable; nothing ran (argparse's own errors exit 2 too)

logger = logging.getLogger("curator")


def add_batch_commands(subparsers: Any) -> None:
    """Add the `batch` verb to the `curator` command's subparsers."""
    defaults = BatchOptions()
    batch = subparsers.add_parser(
        "batch", help="assess a manifest of listings offline with Ray Data",
        description="Assess every listing of a manifest (CSV, JSON Lines or Parquet: listing_id, "
        "image_id, path or url, optional category, marketplace, role) with the online graph's "
        "stages on Ray Data; one HTTP answer per listing goes to DIR/answers-*.jsonl "
        "(and to DIR/answers-*.parquet with --format parquet).")
    batch.add_argument("manifest", type=Path,
                       help="the images, one a row; a relative path is from the manifest's folder")
    batch.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="folder for the answers; must be empty or not exist")
    batch.add_argument("--config", type=Path, default=DEFAULT_SERVE_CONFIG, metavar="FILE",
                       help="serve config whose models, limits and policy set to run "
                       "(default: graphs/serve_config.yaml)")
    batch.add_argument("--policies", type=Path, default=None, metavar="DIR",
                       help="policy directory instead of the config's policy set")
    batch.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size, metavar="N",
                       help=f"images per model call (default {defaults.batch_size})")
    for stage, what in (("read", "read + preprocess"), ("extract", "attribute extractor"),
                        ("score", "quality scorer"), ("listing", "rules + fixes + selection")):
        default = getattr(defaults, f"{stage}_actors")
        batch.add_argument(f"--{stage}-actors", type=_positive_int, default=default,
                           metavar="N", help=f"{what} actors (default {default})")
    batch.add_argument("--gpus-per-model-actor", type=_non_negative_float,
                       default=defaults.gpus_per_model_actor, metavar="GPUS",
                       help="GPUs each extractor and scorer actor asks Ray for (default 0: CPU; "
                       "0.5: two share one GPU)")
    batch.add_argument("--accelerator-type", default=defaults.accelerator_type, metavar="TYPE",
                       help="the GPU model those actors need, as Ray names it (e.g. L4, A100); "
                       "needs --gpus-per-model-actor")
    batch.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl",
                       dest="output_format",
                       help="jsonl (default): the answers as JSON Lines; parquet: the same, and "
                       "beside each answers-*.jsonl an answers-*.parquet with a row per listing "
                       "(typed columns, the images as a nested list, the answer's JSON text)")
    batch.add_argument("--address", default=None,
                       help="the Ray to run on (default: RAY_ADDRESS, else a cluster started "
                       "with `ray start` on this machine, else a new local one; `local`: always "
                       "a new local one)")
    batch.set_defaults(run=_batch)


def _batch(args: argparse.Namespace) -> int:
    from graphs.batch_manifest import read_manifest

    options = BatchOptions(
        batch_size=args.batch_size, read_actors=args.read_actors,
        extract_actors=args.extract_actors, score_actors=args.score_actors,
        listing_actors=args.listing_actors, gpus_per_model_actor=args.gpus_per_model_actor,
        accelerator_type=args.accelerator_type,
        parquet=args.output_format == "parquet",
    )
    try:
        from graphs.batch import BatchSettings

        settings = BatchSettings.from_serve_config(args.config, args.policies)
        options.check(settings.models)
        _check_empty_folder(args.out)
        manifest = read_manifest(args.manifest)
    except (ValueError, OSError, yaml.YAMLError, CuratorError) as exc:  # ManifestError, ...
        print(f"curator batch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logger.info("%d images of %d listings from %s", manifest.num_rows,
                len(manifest.column("listing_id").unique()), args.manifest)
    summary = _run_on_ray(args.address, manifest, args.out, settings, options)
    print("\n".join(summary.lines()))
    return EXIT_OK


def _run_on_ray(address: str | None, *job: Any) -> Any:
    import ray

    from graphs.batch import run_batch

    ray.init(address=address)
    try:
        return run_batch(*job)
    finally:
        ray.shutdown()  # disconnects; stops only a Ray this process started


def _check_empty_folder(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"--out {path} is not an empty folder; answers of an earlier run "
                         "would mix with this one's")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value
