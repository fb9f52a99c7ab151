"""`make bench`: the in-process limit, then the served graph under closed-loop load, then the
report (table on stdout, JSON and a plot under benchmarks/results/). See benchmarks/README.md."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import report
from benchmarks.images import render_images
from benchmarks.inprocess import run_inprocess
from benchmarks.loadgen import LoadGenerator, Payload
from benchmarks.service import DEFAULT_SERVE_CONFIG, REPO_ROOT, ServeService, application_args

logger = logging.getLogger("benchmarks")

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
JSON_NAME = "latest.json"
PLOT_NAME = "latency_vs_throughput.png"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--levels", default="1,4,16,64",
                        help="concurrency levels, comma-separated (default 1,4,16,64)")
    parser.add_argument("--duration", type=float, default=15.0,
                        help="measured seconds per level (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="unmeasured seconds at the start of each level (default 3)")
    parser.add_argument("--service-warmup", type=float, default=5.0,
                        help="seconds of load at concurrency 2 before the first level (default 5)")
    parser.add_argument("--images", type=int, default=16,
                        help="distinct 1000x1000 JPEGs, half white, half busy (default 16)")
    parser.add_argument("--inprocess-duration", type=float, default=40.0,
                        help="measured in-process seconds, split into rounds (default 40)")
    parser.add_argument("--inprocess-warmup", type=int, default=16)
    parser.add_argument("--inprocess-batch", type=int, default=1,
                        help="one-image listings sent through the in-process stages together "
                             "(default 1: listing by listing, as the issue defines the limit)")
    parser.add_argument("--inprocess-torch-threads", type=int, default=1,
                        help="torch intra-op threads in-process; 1 (default) is what Ray gives "
                             "replicas with fractional num_cpus, 0 leaves torch's default")
    parser.add_argument("--inprocess-rounds", type=int, default=4,
                        help="rounds the in-process listings are split into; the rate reported "
                             "is the median round's (default 4)")
    parser.add_argument("--config", type=Path, default=DEFAULT_SERVE_CONFIG,
                        help="serve config to run (default graphs/serve_config.yaml)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: a free one)")
    parser.add_argument("--serve-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for `serve run`, e.g. "
                             "RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (repeatable)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where JSON, plot and serve log go (default benchmarks/results, "
                             "benchmarks/results/quick with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: levels 1,4, 1 s warm-up + 3 s each, short in-process run")
    parser.add_argument("--json-only", action="store_true",
                        help="print the result JSON on stdout instead of the table")
    parser.add_argument("--fail-on-miss", action="store_true",
                        help="exit 1 when a target is missed (default: report only)")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.duration, args.warmup, args.service_warmup = "1,4", 3.0, 1.0, 2.0
        args.inprocess_duration, args.inprocess_warmup, args.inprocess_rounds = 9.0, 4, 3
    args.out_dir = args.out_dir or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    try:
        args.levels = [int(level) for level in args.levels.split(",") if level.strip()]
        args.serve_env = dict(item.split("=", 1) for item in args.serve_env)
    except ValueError:
        parser.error("--levels takes integers like 1,4,16; --serve-env takes KEY=VALUE")
    if not args.config.is_file():
        parser.error(f"--config {args.config} is not a file")
    if not args.levels or min(args.levels) < 1:
        parser.error("concurrency levels must be >= 1")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be > 0 and --warmup >= 0")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    machine = report.machine_info(REPO_ROOT)
    images = render_images(args.images)
    inprocess = run_inprocess(
        images, application_args(args.config), warmup=args.inprocess_warmup,
        duration_s=args.inprocess_duration, rounds=args.inprocess_rounds,
        batch=args.inprocess_batch, torch_threads=args.inprocess_torch_threads,
    )
    payloads = [Payload.build(image.image_id, image.b64) for image in images]

    levels: list[dict[str, Any]] = []
    service = ServeService(config=args.config, port=args.port,
                           log_path=args.out_dir / "serve.log", extra_env=args.serve_env)
    try:
        service.start()
        assert service.monitor is not None
        generator = LoadGenerator(service.url, payloads)
        warm = generator.run_level(2, 0.0, args.service_warmup)
        logger.info("service warm-up: %s, %.1f images/s", warm.status_counts, warm.images_per_s)
        if warm.images_ok == 0:
            logger.error("no successful request during warm-up; the levels will show why")
        for concurrency in args.levels:
            service.monitor.begin_window()
            level = generator.run_level(concurrency, args.warmup, args.duration)
            window = service.monitor.end_window()
            measured = {**level.to_dict(), **asdict(window)}
            levels.append({**measured, **report.derive_level(measured)})
            logger.info("c=%d: %.1f images/s, p50 %s ms, statuses %s", concurrency,
                        level.images_per_s, level.latency_ms["p50"], level.status_counts)
        service_info = {
            "config": str(args.config.relative_to(REPO_ROOT)
                          if args.config.is_relative_to(REPO_ROOT) else args.config),
            "command": "python -m ray.serve.scripts run --address local <config, port rewritten>",
            "extra_env": args.serve_env,
            "startup_s": service.startup_s,
            "peak_rss_by_role_mib": service.monitor.peak_breakdown_mib,
        }
    finally:
        service.stop()
    service_info["leftover_processes"] = service.leftover_processes

    result = {
        "settings": {
            "levels": args.levels, "duration_s": args.duration, "warmup_s": args.warmup,
            "service_warmup_s": args.service_warmup, "images": args.images,
            "image": "1000x1000 JPEG q90, one image per listing, half white / half busy",
            "inprocess": {"warmup": args.inprocess_warmup, "duration_s": args.inprocess_duration,
                          "rounds": args.inprocess_rounds, "batch": args.inprocess_batch,
                          "torch_threads": args.inprocess_torch_threads},
            "quick": args.quick,
        },
        "machine": machine,
        "inprocess": inprocess.to_dict(),
        "service": service_info,
        "levels": levels,
        "headline": report.headline(inprocess.to_dict(), levels),
        "wall_s": round(time.monotonic() - started, 1),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C, and SIGTERM from `make` or a CI runner, unwind through the `finally` that stops the
    # service. SIGINT is set explicitly because a shell starts background jobs with it ignored,
    # and `serve run` would inherit that and never shut down cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = run(args)
    except KeyboardInterrupt:
        logger.error("interrupted; the service was stopped")
        return 130
    report.write_json(result, args.out_dir / JSON_NAME)
    report.plot_latency_vs_throughput(result, args.out_dir / PLOT_NAME)
    if args.json_only:
        print(json.dumps(result, indent=2))
    else:
        print(report.render_text(result))
        print(f"\nwrote {args.out_dir / JSON_NAME} and {args.out_dir / PLOT_NAME} "
              f"({result['wall_s']:.0f} s in all)")
    missed = not all(check["passed"] for check in result["headline"]["targets"])
    return 1 if missed and args.fail_on_miss else 0


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
