"""The `curator` command. Verbs: `serve` (run the online graph), `assess` (the same stages in
this process, no Ray), `vocabulary` (the attribute contract), `eval` (agreement with the
reviewer's labels), and the `models`, `rules`, `experiments`, `batch`, `reviewers` and `reviews`
families."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from curator.cli.batch import add_batch_commands
from curator.cli.eval import add_eval_commands
from curator.cli.experiments import add_experiments_commands
from curator.cli.models import add_models_commands
from curator.cli.reviews import add_review_commands
from curator.cli.rules import add_rules_commands
from graphs.serve_config import DEFAULT_SERVE_CONFIG, check_app_args, read_serve_config
from graphs.serve_env import local_serve_env

READY_TIMEOUT_S = 300

logger = logging.getLogger("curator")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="curator", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    serve = verbs.add_parser(
        "serve", help="start local Ray and the online graph; Ctrl-C stops both"
    )
    serve.add_argument("--config", type=Path, default=DEFAULT_SERVE_CONFIG)
    serve.set_defaults(run=_serve)

    assess = verbs.add_parser("assess", help="assess local image files as one listing, in-process")
    assess.add_argument("images", nargs="+", type=Path)
    assess.add_argument("--listing-id", default="local")
    assess.add_argument("--category", default="default")
    assess.add_argument("--marketplace", default="US")
    assess.add_argument("--policies", type=Path, default=None,
                        help="policy directory (default: the shipped rules/policies)")
    assess.set_defaults(run=_assess)

    vocabulary = verbs.add_parser("vocabulary", help="list every attribute, its unit and range")
    vocabulary.set_defaults(run=_vocabulary)

    add_models_commands(verbs)
    add_rules_commands(verbs)
    add_experiments_commands(verbs)
    add_batch_commands(verbs)
    add_eval_commands(verbs)
    add_review_commands(verbs)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return int(args.run(args))


def _serve(args: argparse.Namespace) -> int:
    config = _validated_serve_config(args.config)
    http = config.get("http_options", {})
    url = f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}"
    # `serve run` starts a local Ray, deploys the config (its autoscaling and replica settings
    # included) and on SIGINT shuts Serve down before Ray exits with the process. It runs in a
    # session of its own so a terminal's Ctrl-C reaches it once, through us, not twice; and with
    # SIGINT restored, since a shell starts background jobs with SIGINT ignored.
    child = subprocess.Popen(
        [sys.executable, "-m", "ray.serve.scripts", "run", str(args.config)],
        env=local_serve_env(os.environ),  # Serve's background work sized for one machine
        start_new_session=True,
        preexec_fn=_restore_sigint,
    )
    signals_seen = 0

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            logger.info("stopping curator (signal %d); again to kill it", signum)
            child.send_signal(signal.SIGINT)
        else:
            logger.warning("killing curator and the Ray it started")
            os.killpg(child.pid, signal.SIGKILL)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    if _wait_ready(f"{url}/healthz", child):
        print(f"\ncurator is serving at {url}  (API docs: {url}/docs; Ctrl-C stops it)\n",
              flush=True)
    return child.wait()


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _validated_serve_config(path: Path) -> dict:
    """Fail before starting Ray when the config or the app arguments in it are wrong."""
    config = read_serve_config(path)
    check_app_args(config)
    return config


def _wait_ready(url: str, child: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    return False


def _assess(args: argparse.Namespace) -> int:
    from curator.core.assessment import ListingAssessor
    from curator.core.pipeline import LocalPipeline
    from rules import POLICY_DIR, load_policy_set

    assessor = ListingAssessor(load_policy_set(args.policies or POLICY_DIR))
    pipeline = LocalPipeline()
    files = {path.name: path.read_bytes() for path in args.images}
    measured = pipeline.run(list(files.items()))
    response = asyncio.run(assessor.assess(
        listing_id=args.listing_id,
        category=args.category,
        marketplace=args.marketplace,
        images=measured,
        roles=[None] * len(measured),
        fixer=pipeline.fixer(files),
    ))
    print(response.model_dump_json(indent=2, exclude_none=True))
    return 0


def _vocabulary(_: argparse.Namespace) -> int:
    from curator.contracts.vocabulary import VOCABULARY

    for attribute in VOCABULARY.values():
        bounds = ""
        if attribute.minimum is not None or attribute.maximum is not None:
            bounds = f" [{attribute.minimum if attribute.minimum is not None else ''}.."
            bounds += f"{attribute.maximum if attribute.maximum is not None else ''}]"
        print(f"{attribute.name:34} {attribute.kind:5} {attribute.unit}{bounds}  "
              f"{attribute.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
