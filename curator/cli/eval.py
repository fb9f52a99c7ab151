"""`curator eval`: the real stages, rules and selection over the labelled dev set, in this process,
and how far their answers agree with the reviewer's (curator.core.evaluation).

Wired into `curator.cli` with `add_eval_commands(verbs)`. Exits 0 when the run completed, 2 when
the dev set or an option is unusable; the figures themselves never fail the command: the
targets live in the benchmark (benchmarks/targets.py), not here.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from curator.cli.reviews import add_store_option, open_store
from curator.core.evaluation import DEVSET_DIR, DevSetError, groups_of, load_devset

EXIT_OK = 0
EXIT_USAGE = 2


def add_eval_commands(subparsers: Any) -> None:
    """Add the `eval` verb to the `curator` command's subparsers."""
    verb = subparsers.add_parser(
        "eval", help="agreement with the reviewer's labels on the dev set",
        description="Assess each product group of the labelled dev set as one listing and print "
        "per-label precision, recall, F1 and confusion counts, the macro F1 and the selection "
        "hit rate; write a contact sheet of every disagreement.")
    verb.add_argument("--devset", type=Path, default=DEVSET_DIR, metavar="DIR",
                      help="dev set folder with labels/*.csv and images/ (default: %(default)s)")
    verb.add_argument("--group", action="append", default=None, metavar="ID",
                      help="only this product group (repeatable): a slice of the set")
    verb.add_argument("--extractor-models", default=None, metavar="NAMES",
                      help="comma-separated detectors to run instead of the default set, to "
                      "measure what one adds (e.g. text,faces_hands)")
    verb.add_argument("--cpu-precision", choices=("auto", "fp32", "int8", "bf16"),
                      default="auto", help="the CPU runtime of the detectors (as "
                      "models.cpu_precision): compare what another host would answer")
    verb.add_argument("--marketplace", default="US")
    verb.add_argument("--policies", type=Path, default=None, metavar="DIR",
                      help="policy directory (default: the shipped rules/policies)")
    verb.add_argument("--sheet", type=Path, default=Path("eval-disagreements.html"),
                      metavar="FILE", help="contact sheet of the disagreements (HTML)")
    verb.add_argument("--json", type=Path, default=None, metavar="FILE",
                      help="also write the figures and every disagreement as JSON")
    verb.add_argument("--from-reviews", action="store_true",
                      help="instead of the dev set: rule precision from the review queue's "
                      "verdicts (as GET /v1/rules/precision), from --store")
    verb.add_argument("--since", type=datetime.fromisoformat, default=None,
                      help="with --from-reviews: reviews from this time (default: 30 days "
                      "before --until)")
    verb.add_argument("--until", type=datetime.fromisoformat, default=None,
                      help="with --from-reviews: reviews before this time (default: now)")
    add_store_option(verb)
    verb.set_defaults(run=_eval)


def _from_reviews(args: argparse.Namespace) -> int:
    from curator.contracts.errors import CuratorError
    from curator.core.review_desk import ReviewDesk
    from curator.core.review_precision import format_precision

    try:
        report = ReviewDesk(open_store(args.store).review).precision(args.since, args.until)
    except CuratorError as error:
        print(f"curator eval: --{error.field}: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    print(format_precision(report))
    if args.json is not None:
        args.json.write_text(report.model_dump_json(indent=2))
    return EXIT_OK


def _eval(args: argparse.Namespace) -> int:
    if args.from_reviews:
        return _from_reviews(args)
    from curator.cli.eval_report import format_table, write_contact_sheet
    from curator.core.evaluation import evaluate_devset
    from curator.core.pipeline import LocalPipeline
    from curator.core.settings import ModelStageSettings
    from rules import POLICY_DIR, load_policy_set

    try:
        images = load_devset(args.devset)
    except DevSetError as error:
        print(f"curator eval: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.group:
        unknown = sorted(set(args.group) - set(groups_of(images)))
        if unknown:
            print(f"curator eval: no such group {', '.join(unknown)}", file=sys.stderr)
            return EXIT_USAGE
        images = [image for image in images if image.group in set(args.group)]
    stages = ModelStageSettings(cpu_precision=args.cpu_precision)
    if args.extractor_models is not None:
        try:
            stages = ModelStageSettings(
                extractor_models=tuple(n for n in args.extractor_models.split(",") if n),
                cpu_precision=args.cpu_precision)
        except ValueError as error:
            print(f"curator eval: --extractor-models: {error}", file=sys.stderr)
            return EXIT_USAGE
    report = evaluate_devset(images, LocalPipeline(stages),
                             load_policy_set(args.policies or POLICY_DIR), args.marketplace)
    print(format_table(report))
    shown = write_contact_sheet(report, args.sheet)
    print(f"contact sheet of {shown} disagreements: {args.sheet}")
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return EXIT_OK
