"""`curator reviewers ...` and `curator reviews ...`: reviewer accounts, and what the review
queue's verdicts become outside it (issue 15).

    reviewers add NAME        a new token for NAME (shown once; only its SHA-256 is stored)
    reviewers list            every reviewer, enabled or not
    reviewers disable NAME    ends NAME's sessions and refuses the token from now on
    reviews purge             drop thumbnails past the retention now (replicas also do it hourly)
    reviews export-labels DIR reviewed images as a labelled set in the dev-set layout
    reviews export-outcomes   reviews that overturned a rule, as outcome events in the store

Every command takes `--store URL` (default: the local store of `curator serve`). Wired into
`curator.cli` with `add_review_commands(verbs)`; each sets `run`, which returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from curator.core.settings import ReviewSettings, StoreSettings

EXIT_OK = 0
EXIT_FAILED = 1
DEFAULT_STORE = StoreSettings().url


def add_review_commands(subparsers: Any) -> None:
    reviewers = subparsers.add_parser("reviewers", help="review queue accounts")
    verbs = reviewers.add_subparsers(dest="reviewers_verb", required=True)
    add = verbs.add_parser("add", help="create a reviewer (or a new token for one); the token "
                           "is printed once")
    add.add_argument("name")
    add.set_defaults(run=_add)
    listing = verbs.add_parser("list", help="every reviewer")
    listing.set_defaults(run=_list)
    disable = verbs.add_parser("disable", help="refuse a reviewer's token and sessions")
    disable.add_argument("name")
    disable.set_defaults(run=_disable)

    reviews = subparsers.add_parser("reviews", help="the review queue's verdicts")
    review_verbs = reviews.add_subparsers(dest="reviews_verb", required=True)
    purge = review_verbs.add_parser("purge", help="drop thumbnails past the retention now")
    purge.add_argument("--retention-days", type=float,
                       default=ReviewSettings().retention_days)
    purge.set_defaults(run=_purge)
    labels = review_verbs.add_parser(
        "export-labels", help="reviewed images as a labelled dev set (labels/reviews.csv, "
        "images/reviews/), for `curator eval --devset DIR`")
    labels.add_argument("directory", type=Path, metavar="DIR")
    labels.set_defaults(run=_export_labels)
    outcomes = review_verbs.add_parser(
        "export-outcomes", help="write reviews that marked a rule wrong as outcome events of "
        "type overturned_by_review (an experiment guardrail); repeats are stored once")
    outcomes.add_argument("--since", type=datetime.fromisoformat, default=None)
    outcomes.add_argument("--until", type=datetime.fromisoformat, default=None)
    outcomes.set_defaults(run=_export_outcomes)
    for parser in (add, listing, disable, purge, labels, outcomes):
        add_store_option(parser)


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=DEFAULT_STORE, metavar="URL",
                        help="the decision store (default: %(default)s)")


def open_store(url: str) -> Any:
    from experiments.store import DecisionStore

    store = DecisionStore(url)
    store.create_schema()
    return store


def _add(args: argparse.Namespace) -> int:
    from curator.core.reviewer_auth import new_token, token_digest

    store = open_store(args.store)
    token = new_token()
    store.review.add_reviewer(args.name, token_digest(token))
    print(f"reviewer {args.name}: token (shown once, keep it secret):\n{token}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    for reviewer in open_store(args.store).review.reviewers():
        state = "disabled" if reviewer.disabled else "enabled"
        print(f"{reviewer.name}\t{state}\tsince {reviewer.created_at:%Y-%m-%d}")
    return EXIT_OK


def _disable(args: argparse.Namespace) -> int:
    if not open_store(args.store).review.disable_reviewer(args.name):
        print(f"curator reviewers: no reviewer {args.name!r}", file=sys.stderr)
        return EXIT_FAILED
    print(f"reviewer {args.name} disabled")
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    from curator.core.review_desk import ReviewDesk

    purged = ReviewDesk(open_store(args.store).review).purge(args.retention_days)
    print(f"{purged} review item(s) past {args.retention_days:g} days purged")
    return EXIT_OK


def _export_labels(args: argparse.Namespace) -> int:
    from curator.core.review_exports import export_labels

    written = export_labels(open_store(args.store).review, args.directory)
    print(f"{written} reviewed image(s) written to {args.directory}")
    return EXIT_OK


def _export_outcomes(args: argparse.Namespace) -> int:
    from curator.core.review_desk import checked_time
    from curator.core.review_exports import overturn_events

    store = open_store(args.store)
    reviewed = store.review.reviews(checked_time(args.since, "since"),
                                    checked_time(args.until, "until"))
    events = overturn_events(reviewed)
    added = store.write_outcomes(events)
    print(f"{len(events)} overturned_by_review event(s) from {len(reviewed)} review(s); "
          f"{added} new in the store")
    return EXIT_OK
