"""`curator rules ...`: check, show, explain, weigh and publish policy sets.

    check    validate policy directories (CI): exit 1 with file:line messages
    show     the effective policy of a (category, marketplace), or its HTTP JSON
    explain  assess local files as one listing and say why each image got its action
    impact   what a policy change does to a folder of listings, before it ships
    publish  put a policy set into a serve config's user_config and `serve deploy` it

Wired into `curator.cli` with `add_rules_commands(verbs)`; each sub-verb sets `run`, which returns
the process exit status. The in-process paths (explain, impact) use the same `LocalPipeline` and
`ListingAssessor` as `curator assess`, so they decide exactly as the service does. The impact
computation and report live in `curator.core.policy_impact`; the words for rules and verdicts in
`curator.core.policy_explain`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from curator.contracts import schemas
from curator.contracts.errors import PolicyError
from curator.contracts.ids import CATEGORY_PATTERN, MARKETPLACE_PATTERN
from curator.core.policy_explain import render_action, render_condition, render_explanation
from curator.core.policy_impact import (
    DEFAULT_CATEGORY,
    DEFAULT_EXAMPLES,
    DEFAULT_MARKETPLACE,
    find_listings,
    impact_report,
)
from graphs.serve_config import (
    DEFAULT_SERVE_CONFIG,
    INGRESS_DEPLOYMENT,
    check_user_config,
    read_serve_config,
)
from rules.loader import POLICY_DIR, load_policy_set, policy_set_from_texts, read_policy_texts
from rules.schema import Rule

if TYPE_CHECKING:
    from curator.core.pipeline import LocalPipeline
    from rules.policy_set import PolicySet

EXIT_OK = 0
EXIT_INVALID = 1  # a policy set does not load, or the command's input is unusable



def add_rules_commands(subparsers: Any) -> None:
    """Add the `rules` verb and its sub-verbs to the `curator` command's subparsers."""
    rules = subparsers.add_parser("rules", help="check, show, explain, weigh and publish policies")
    verbs = rules.add_subparsers(dest="rules_verb", required=True)

    check = verbs.add_parser("check", help="validate policy directories; exit 1 on any error")
    check.add_argument("dirs", nargs="*", type=Path, metavar="DIR",
                       help=f"policy directories (default: {POLICY_DIR})")
    check.set_defaults(run=_check)

    show = verbs.add_parser("show", help="the effective policy of a category in a marketplace")
    show.add_argument("category", type=_category)
    show.add_argument("marketplace", type=_marketplace)
    _policies_option(show)
    show.add_argument("--json", action="store_true",
                      help="as GET /v1/policies/{category}/{marketplace} answers")
    show.add_argument("-v", "--verbose", action="store_true",
                      help="with each rule's description and message")
    show.set_defaults(run=_show)

    explain = verbs.add_parser("explain", help="assess image files as one listing and explain")
    explain.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    explain.add_argument("--category", type=_category, default=DEFAULT_CATEGORY)
    explain.add_argument("--marketplace", type=_marketplace, default=DEFAULT_MARKETPLACE)
    explain.add_argument("--listing-id", default="local")
    _policies_option(explain)
    explain.add_argument("--write-fixed", type=Path, metavar="DIR",
                         help="write each accepted fixed image here as <name>.fixed.jpg")
    explain.set_defaults(run=_explain)

    impact = verbs.add_parser("impact", help="what changing a policy set does to a folder of "
                              "listings (each subfolder one listing, each loose file one)")
    impact.add_argument("images", type=Path, metavar="IMAGES",
                        help="folder: each subfolder one listing, each loose image file one")
    impact.add_argument("--old", type=Path, required=True, metavar="DIR",
                        help="policy directory live now")
    impact.add_argument("--new", type=Path, required=True, metavar="DIR",
                        help="policy directory to ship")
    impact.add_argument("--category", type=_category, action="append", metavar="C",
                        help="repeatable; default: every category either set defines + default")
    impact.add_argument("--marketplace", type=_marketplace, action="append", metavar="M",
                        help="repeatable; default: every marketplace either set defines")
    impact.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, metavar="N",
                        help="examples of each kind of change per combination")
    impact.add_argument("--no-fixes", action="store_true",
                        help="do not apply fixes (faster; fix rules fall back to `otherwise`)")
    impact.add_argument("--json", action="store_true", help="the report for machines")
    impact.set_defaults(run=_impact)

    publish = verbs.add_parser("publish", help="check a policy directory and deploy it into "
                               "running replicas (user_config: no restart)")
    publish.add_argument("dir", type=Path, metavar="DIR")
    publish.add_argument("--config", type=Path, default=DEFAULT_SERVE_CONFIG,
                         help="the serve config the cluster runs (its other settings are "
                              "deployed as they are)")
    publish.add_argument("--app", default="curator", help="application name in the config")
    publish.add_argument("--address", default="http://127.0.0.1:8265",
                         help="Ray dashboard address")
    publish.add_argument("--output", type=Path, help="where to write the config "
                         "(default: a new temporary file)")
    publish.add_argument("--dry-run", action="store_true", help="write the config, deploy nothing")
    publish.set_defaults(run=_publish)


def _policies_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policies", type=Path, default=POLICY_DIR, metavar="DIR",
                        help="policy directory (default: the shipped rules/policies)")


def _category(text: str) -> str:
    if not re.fullmatch(CATEGORY_PATTERN, text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a category ({CATEGORY_PATTERN})")
    return text


def _marketplace(text: str) -> str:
    if not re.fullmatch(MARKETPLACE_PATTERN, text.upper()):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 3166 alpha-2 marketplace")
    return text.upper()


def _load(directory: Path) -> PolicySet | None:
    """The policy set, or None after printing why it does not load."""
    try:
        return load_policy_set(directory)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return None


@cache
def local_pipeline() -> LocalPipeline:
    """One pipeline per process: it loads the ONNX models, which takes a while."""
    from curator.core.pipeline import LocalPipeline

    return LocalPipeline()


# --- check ------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for directory in args.dirs or [POLICY_DIR]:
        policies = _load(directory)
        if policies is None:
            status = EXIT_INVALID
            continue
        combinations = _all_combinations(policies)
        distinct = {policies.resolve(c, m).version for c, m in combinations}
        print(f"ok: {len(policies.sources)} files, {len(combinations)} (category, marketplace) "
              f"combinations ({len(distinct)} distinct policies), policy set {policies.version} "
              f"({directory})")
    return status


def _all_combinations(policies: PolicySet) -> list[tuple[str | None, str | None]]:
    """What a set resolves when it is built: every category and marketplace, and neither."""
    return [(c, m) for c in (None, *policies.categories) for m in (None, *policies.marketplaces)]


# --- show -------------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    policies = _load(args.policies)
    if policies is None:
        return EXIT_INVALID
    if args.json:
        response = schemas.PolicyResponse.of(policies, args.category, args.marketplace)
        print(response.model_dump_json(indent=2, exclude_none=True))
    else:
        print("\n".join(render_policy(policies, args.category, args.marketplace, args.verbose)))
    return EXIT_OK


def render_policy(
    policies: PolicySet, category: str, marketplace: str, verbose: bool = False
) -> list[str]:
    policy = policies.resolve(category, marketplace)
    lines = [f"{category} / {marketplace}: policy {policy.id}"]
    fallbacks = []
    if category not in policies.categories:
        fallbacks.append(f"category {category}")
    if marketplace not in policies.marketplaces:
        fallbacks.append(f"marketplace {marketplace}")
    if fallbacks:
        lines.append(f"  ({' and '.join(fallbacks)} have no policy file of their own: "
                     "the layers below apply)")
    lines += [
        f"  layers     {' -> '.join(policy.layers)} (later layers win)",
        f"  version    {policy.version} (policy set {policies.version})",
        f"  selection  near-duplicates within pHash distance "
        f"{policy.selection.duplicate_distance} are dropped",
    ]
    for rule in policy.rules:
        lines += ["", *_rule_block(rule, policy.sources.get(rule.id, ()), verbose)]
    disabled = [(rule_id, layer) for layer in policy.layers
                for rule_id in policies.policy(layer).disable]
    if disabled:
        lines += ["", "disabled here:"]
        lines += [f"  {rule_id}  (from {_provenance(policy.sources.get(rule_id, ())[:-1])}; "
                  f"disabled by {layer})" for rule_id, layer in disabled]
    return lines


def _rule_block(rule: Rule, sources: Sequence[str], verbose: bool) -> list[str]:
    lines = [
        f"{rule.id}  [{rule.applies_to}]  {render_action(rule)}",
        f"  require  {render_condition(rule.require)}",
        f"  from     {_provenance(sources)}",
    ]
    if verbose:
        lines += textwrap.wrap(rule.description, 96, initial_indent="  why      ",
                               subsequent_indent=" " * 11)
        lines.append(f"  message  {rule.message}")
    return lines


def _provenance(sources: Sequence[str]) -> str:
    if not sources:
        return "?"
    changed = f", changed by {', '.join(sources[1:])}" if len(sources) > 1 else ""
    return f"{sources[0]}{changed}"


# --- explain ----------------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    from curator.core.assessment import ListingAssessor

    policies = _load(args.policies)
    if policies is None:
        return EXIT_INVALID
    files = _read_files(args.images)
    if files is None:
        return EXIT_INVALID
    pipeline = local_pipeline()
    measured = pipeline.run(list(files.items()))
    response = asyncio.run(ListingAssessor(policies).assess(
        listing_id=args.listing_id, category=args.category, marketplace=args.marketplace,
        images=measured, roles=[None] * len(measured), fixer=pipeline.fixer(files),
        include_fixed_images=args.write_fixed is not None,
    ))
    policy = policies.resolve(args.category, args.marketplace)
    print("\n".join(render_explanation(response, policy)))
    if args.write_fixed is not None:
        for path in _write_fixed(response, args.write_fixed):
            print(f"wrote {path}")
    return EXIT_OK


def _read_files(paths: Sequence[Path]) -> dict[str, bytes] | None:
    """{image id (the file name): bytes}; None after saying why when two files share a name."""
    files: dict[str, bytes] = {}
    for path in paths:
        if path.name in files:
            print(f"two images are named {path.name}: image ids are file names and must be "
                  "unique within a listing", file=sys.stderr)
            return None
        files[path.name] = path.read_bytes()
    return files


def _write_fixed(response: schemas.AssessResponse, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for image in response.images:
        if image.fix is not None and image.fix.image is not None:
            path = directory / f"{Path(image.image_id).stem}.fixed.jpg"  # fixes write JPEG
            path.write_bytes(base64.b64decode(image.fix.image))
            written.append(path)
    return written


# --- impact -----------------------------------------------------------------------------------


def _impact(args: argparse.Namespace) -> int:
    old, new = _load(args.old), _load(args.new)
    if old is None or new is None:
        return EXIT_INVALID
    if not args.images.is_dir():
        print(f"{args.images}: not a folder of listings", file=sys.stderr)
        return EXIT_INVALID
    listings = find_listings(args.images)
    if not listings:
        print(f"{args.images}: no image files found", file=sys.stderr)
        return EXIT_INVALID
    report = impact_report(
        args.old, old, args.new, new, listings, local_pipeline(), categories=args.category,
        marketplaces=args.marketplace, max_examples=args.examples, apply_fixes=not args.no_fixes,
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    return EXIT_OK


# --- publish ----------------------------------------------------------------------------------


def _publish(args: argparse.Namespace) -> int:
    policies = _load(args.dir)
    if policies is None:
        return EXIT_INVALID
    texts = read_policy_texts(args.dir)
    # The replicas build the set from these texts: it must be the set just checked.
    if policy_set_from_texts(texts).version != policies.version:
        print(f"{args.dir}: the policy texts do not rebuild policy set {policies.version}",
              file=sys.stderr)
        return EXIT_INVALID
    try:
        config = read_serve_config(args.config)
        with_policies(config, args.app, texts)
        check_user_config(config)
    except ValueError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    output = args.output or _temporary_yaml()
    output.write_text(yaml.dump(config, Dumper=_BlockTextDumper, sort_keys=False,
                                allow_unicode=True), encoding="utf-8")
    print(f"policy set {policies.version} ({len(texts)} files) -> {output}")
    if args.dry_run:
        print(f"dry run: nothing deployed (serve deploy {output} --address {args.address})")
        return EXIT_OK
    # `serve deploy` of a config whose only change is a user_config calls reconfigure() on the
    # running replicas: the policy set is swapped with no restart.
    completed = subprocess.run([sys.executable, "-m", "ray.serve.scripts", "deploy", str(output),
                                "--address", args.address], check=False)
    if completed.returncode == 0:
        print(f"published policy set {policies.version} to application {args.app} at "
              f"{args.address}")
    return completed.returncode


def with_policies(config: dict[str, Any], app: str, texts: dict[str, str]) -> dict[str, Any]:
    """Set the ingress's user_config.policies of `app` in a serve config (in place)."""
    applications = config.get("applications") or []
    matches = [a for a in applications if a.get("name") == app]
    if not matches:
        known = ", ".join(str(a.get("name")) for a in applications) or "none"
        raise ValueError(f"no application named {app!r} (applications: {known})")
    deployments = matches[0].setdefault("deployments", [])
    ingress = next((d for d in deployments if d.get("name") == INGRESS_DEPLOYMENT), None)
    if ingress is None:
        ingress = {"name": INGRESS_DEPLOYMENT}
        deployments.append(ingress)
    ingress["user_config"] = {**(ingress.get("user_config") or {}), "policies": texts}
    return config


def _temporary_yaml() -> Path:
    with tempfile.NamedTemporaryFile("w", prefix="curator-serve-", suffix=".yaml",
                                     delete=False) as handle:
        return Path(handle.name)


class _BlockTextDumper(yaml.SafeDumper):
    """Multi-line strings (the policy files) as `|` blocks, so the written config reads like
    the policy files themselves."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockTextDumper.add_representer(str, _represent_str)
