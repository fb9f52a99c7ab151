"""`make bench`: per-model figures, then for each graph (full, technical-only) its in-process
limit and the served graph under a closed-loop sweep (and, for the full graph, an open loop at
Poisson rates and the soak); then the report (text on stdout, JSON and plots under
benchmarks/results/). See benchmarks/README.md."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import render, report
from benchmarks.arrivals import MAX_PEAK_FRACTION, parse_rates
from benchmarks.images import devset_images, render_images
from benchmarks.service import (
    DEFAULT_SERVE_CONFIG,
    REPO_ROOT,
    ServiceError,
    application_args,
    write_technical_config,
)
from benchmarks.soak import SoakPlan
from benchmarks.sweep import GraphPlan, TailConfirmation, describe_config, run_graph
from benchmarks.traffic import Payload

logger = logging.getLogger("benchmarks")

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
JSON_NAME = "latest.json"
GRAPHS = ("full", "technical")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    add = parser.add_argument
    add("--graph", choices=("full", "technical", "both"), default="both",
        help="which graph to serve and sweep (default both; technical: the serve config with "
             "args.models: null and no model deployments)")
    add("--levels", default="1,2,4,16,64",
        help="closed-loop concurrency levels, comma-separated (default 1,2,4,16,64)")
    add("--duration", type=float, default=8.0, help="measured seconds per level (default 8)")
    add("--warmup", type=float, default=2.0,
        help="unmeasured seconds at the start of each level (default 2)")
    add("--service-warmup", type=float, default=5.0,
        help="seconds of load at concurrency 2 before the first level (default 5)")
    add("--open-loop", default="0.5,0.7,0.8,0.9,1.0,1.2", metavar="RATES",
        help="open-loop offered rates after the closed loop: fractions of the closed-loop peak "
             "(0.8), listings/s (4/s), or none (default 0.5,0.7,0.8,0.9,1.0,1.2: up to an "
             "overload that admission control has to shed)")
    add("--open-loop-on", choices=("full", "technical", "both"), default="full",
        help="graph(s) that get the open loop (default full)")
    # 20 s: a 10 s window held 19-47 requests on the 2-core host, too few for its p99 (the
    # worst one or two answers) to repeat between runs.
    add("--open-duration", type=float, default=20.0,
        help="measured seconds per open-loop rate (default 20)")
    add("--open-warmup", type=float, default=2.0,
        help="unmeasured seconds of Poisson arrivals before each rate's window (default 2)")
    add("--confirm-answers", type=int, default=400,
        help="after the sweeps, the load each p99 target is read at (full graph) runs again "
             "until it has this many answers, so that its p99 has a 95%% upper bound (that "
             "takes 368); 0: read the targets on the sweep's own short windows (default 400)")
    add("--confirm-max-seconds", type=float, default=150.0,
        help="... for at most this many seconds each (default 150)")
    add("--soak-seconds", type=float, default=600.0,
        help="after the full graph's open loop, a soak of this many measured seconds at "
             "--soak-share of the closed-loop peak: 5xx, shed share, p99 per minute, RSS per "
             "replica over time (default 600; 0 skips it, as --quick does)")
    add("--soak-warmup", type=float, default=60.0,
        help="seconds of soak load before its window, so RSS growth is counted after the "
             "warm-up (default 60)")
    add("--soak-share", type=float, default=0.8,
        help="the soak's offered rate as a share of the closed-loop peak (default 0.8)")
    add("--soak-bucket", type=float, default=60.0,
        help="seconds per row of the soak's figures over time (default 60: per minute)")
    add("--batch-sizes", default="64,256", metavar="N,N",
        help="images per `curator batch` job after the graphs, each a whole job on a private "
             "local Ray; two sizes also give the rate past start-up (default 64,256; none: skip)")
    add("--models-only", action="store_true",
        help="only the per-model figures (no Ray, no HTTP)")
    add("--skip-models", action="store_true", help="no per-model figures")
    add("--skip-devset", action="store_true",
        help="no dev-set phase (`curator eval` over benchmarks/devset and its targets; "
             "--quick skips it too)")
    add("--model-batches", default="1,8,32", help="batch sizes per model (default 1,8,32)")
    add("--model-min-s", type=float, default=2.0,
        help="measured seconds per model and batch, at least 3 calls (default 2)")
    add("--images", type=int, default=16,
        help="distinct images, one per listing (default 16)")
    add("--image-set", choices=("devset", "synthetic"), default="devset",
        help="devset: real product photos spread over benchmarks/devset (default); synthetic: "
             "1000x1000 JPEGs, half white, half busy")
    add("--inprocess-duration", type=float, default=16.0,
        help="measured in-process seconds per graph, split into rounds (default 16)")
    add("--inprocess-warmup", type=int, default=16)
    add("--inprocess-batch", type=int, default=1,
        help="one-image listings sent through the in-process stages together "
             "(default 1: listing by listing, as the issue defines the limit)")
    add("--inprocess-torch-threads", type=int, default=1,
        help="torch intra-op threads in-process and for the scorer's model figures; 1 "
             "(default) is what Ray gives replicas with fractional num_cpus")
    add("--inprocess-rounds", type=int, default=4,
        help="rounds the in-process listings are split into (default 4)")
    add("--config", type=Path, default=DEFAULT_SERVE_CONFIG,
        help="full-graph serve config (default graphs/serve_config.yaml); the technical-only "
             "variant is derived from it")
    add("--port", type=int, default=None, help="HTTP port (default: a free one)")
    add("--serve-env", action="append", default=[], metavar="KEY=VALUE",
        help="extra environment for `serve run`, e.g. RAY_SERVE_THROUGHPUT_OPTIMIZED=1 "
             "(repeatable)")
    add("--out-dir", type=Path, default=None,
        help="where JSON, plots and serve logs go (default benchmarks/results, "
             "benchmarks/results/quick with --quick)")
    add("--quick", action="store_true",
        help="smoke run: levels 1,4 for 3 s, open loop 0.5,0.9 for 4 s, short in-process and "
             "model runs")
    add("--json-only", action="store_true",
        help="print the result JSON on stdout instead of the report")
    add("--fail-on-miss", action="store_true",
        help="exit 1 when a target is missed (default: report only)")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.duration, args.warmup, args.service_warmup = "1,4", 3.0, 1.0, 2.0
        args.inprocess_duration, args.inprocess_warmup, args.inprocess_rounds = 6.0, 4, 3
        args.open_loop, args.open_duration, args.open_warmup = "0.5,0.9", 4.0, 1.0
        args.model_batches, args.model_min_s = "1,8", 0.5
        args.batch_sizes = "16,32"
        args.soak_seconds = 0.0
        args.confirm_answers = 0
    args.out_dir = args.out_dir or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    try:
        args.levels = [int(level) for level in args.levels.split(",") if level.strip()]
        args.model_batches = [int(b) for b in args.model_batches.split(",") if b.strip()]
        args.batch_sizes = ([] if args.batch_sizes.strip() == "none" else
                            [int(n) for n in args.batch_sizes.split(",") if n.strip()])
        args.serve_env = dict(item.split("=", 1) for item in args.serve_env)
    except ValueError:
        parser.error("--levels, --model-batches and --batch-sizes take integers like 1,4,16; "
                     "--serve-env takes KEY=VALUE")
    try:
        args.open_loop = parse_rates(args.open_loop)
    except ValueError as error:
        parser.error(str(error))
    if not args.config.is_file():
        parser.error(f"--config {args.config} is not a file")
    if not args.levels or min(args.levels) < 1:
        parser.error("concurrency levels must be >= 1")
    if not args.model_batches or min(args.model_batches) < 1:
        parser.error("--model-batches must be >= 1")
    if args.batch_sizes and min(args.batch_sizes) < 1:
        parser.error("--batch-sizes must be >= 1")
    if args.duration <= 0 or args.warmup < 0 or args.open_duration <= 0 or args.open_warmup < 0:
        parser.error("durations must be > 0 and warm-ups >= 0")
    if (args.soak_seconds < 0 or args.soak_warmup < 0 or args.soak_bucket <= 0
            or not 0 < args.soak_share <= MAX_PEAK_FRACTION):
        parser.error("--soak-seconds and --soak-warmup must be >= 0, --soak-bucket > 0, "
                     f"--soak-share in (0, {MAX_PEAK_FRACTION:g}]")
    if args.confirm_answers < 0 or args.confirm_max_seconds <= 0:
        parser.error("--confirm-answers must be >= 0 and --confirm-max-seconds > 0")
    if args.models_only and args.skip_models:
        parser.error("--models-only and --skip-models exclude each other")
    return args


def graph_plans(args: argparse.Namespace, workdir: Path) -> list[GraphPlan]:
    names = GRAPHS if args.graph == "both" else (args.graph,)
    with_open = GRAPHS if args.open_loop_on == "both" else (args.open_loop_on,)
    plans = []
    for name in names:
        rates = args.open_loop if name in with_open else []
        if name == "full":
            soak = (SoakPlan(args.soak_seconds, args.soak_warmup, args.soak_bucket,
                             args.soak_share) if args.soak_seconds > 0 else None)
            confirm = (TailConfirmation(args.confirm_answers, args.confirm_max_seconds)
                       if args.confirm_answers > 0 else None)
            plans.append(GraphPlan("full", args.config, describe_config(args.config), rates,
                                   confirm, soak))
        else:
            config = write_technical_config(args.config, workdir / "technical.yaml")
            plans.append(GraphPlan("technical", config, "technical-only variant of "
                                   f"{describe_config(args.config)} (models: null)", rates))
    return plans


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    phases: dict[str, float] = {}
    machine = report.machine_info(REPO_ROOT)
    images = (devset_images(args.images) if args.image_set == "devset"
              else render_images(args.images))
    models = None
    if not args.skip_models:
        from benchmarks.models import measure_models

        models = measure_models(images, application_args(args.config), args.model_batches,
                                torch_threads=args.inprocess_torch_threads,
                                min_s=args.model_min_s).to_dict()
        phases["models"] = round(time.monotonic() - started, 1)
    devset = None
    if not args.skip_devset and not args.quick:
        from benchmarks.devset_quality import measure_devset

        devset = measure_devset(application_args(args.config))
        phases["devset"] = devset["wall_s"]
    graphs: dict[str, Any] = {}
    if not args.models_only:
        payloads = [Payload.build(image.image_id, image.b64) for image in images]
        with tempfile.TemporaryDirectory(prefix="curator-bench-graphs-") as workdir:
            for plan in graph_plans(args, Path(workdir)):
                phase_started = time.monotonic()
                graphs[plan.name] = run_graph(plan, images, payloads, args)
                phases[plan.name] = round(time.monotonic() - phase_started, 1)
    batch = None
    if not args.models_only and args.batch_sizes:
        from benchmarks.batch import measure_batch

        phase_started = time.monotonic()
        batch = measure_batch(images, args.config, args.batch_sizes)
        phases["batch"] = round(time.monotonic() - phase_started, 1)
    return {
        "settings": {
            "graphs": list(graphs), "levels": args.levels, "duration_s": args.duration,
            "warmup_s": args.warmup, "service_warmup_s": args.service_warmup,
            "open_loop": {"rates": [str(rate) for rate in args.open_loop],
                          "on": args.open_loop_on, "duration_s": args.open_duration,
                          "warmup_s": args.open_warmup},
            "tail_confirmation": {"answers": args.confirm_answers,
                                  "max_seconds": args.confirm_max_seconds},
            "images": args.images,
            "image": ("dev-set photos (benchmarks/devset), one per listing"
                      if args.image_set == "devset" else
                      "1000x1000 JPEG q90, one image per listing, half white / half busy"),
            "inprocess": {"warmup": args.inprocess_warmup, "duration_s": args.inprocess_duration,
                          "rounds": args.inprocess_rounds, "batch": args.inprocess_batch,
                          "torch_threads": args.inprocess_torch_threads},
            "model_batches": args.model_batches, "model_min_s": args.model_min_s,
            "serve_env": args.serve_env, "quick": args.quick, "batch_sizes": args.batch_sizes,
            "soak": {"seconds": args.soak_seconds, "warmup_s": args.soak_warmup,
                     "share_of_peak": args.soak_share, "bucket_s": args.soak_bucket},
        },
        "machine": machine,
        "models": models,
        "devset": devset,
        "graphs": graphs,
        "batch": batch,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "phases_s": phases,
        "wall_s": round(time.monotonic() - started, 1),
    }


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
    except ServiceError as error:
        logger.error("%s; no report written", error)
        return 2
    written = [args.out_dir / JSON_NAME]
    report.write_json(result, written[0])
    for name, graph in result["graphs"].items():
        written.append(args.out_dir / f"latency_vs_throughput_{name}.png")
        report.plot_latency_vs_throughput(graph, result["machine"], written[-1])
    if args.json_only:
        print(json.dumps(result, indent=2))
    else:
        print(render.render_text(result))
        print(f"\nwrote {', '.join(str(path) for path in written)} "
              f"({result['wall_s']:.0f} s in all)")
    checks = [check for graph in result["graphs"].values()
              for check in graph["headline"]["targets"]]
    checks += result["devset"]["targets"] if result["devset"] else []
    missed = any(not check["passed"] for check in checks)
    return 1 if missed and args.fail_on_miss else 0


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
