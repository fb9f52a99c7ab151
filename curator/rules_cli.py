"""`curator rules ...`: check, show, explain, weigh and publish policy sets.

    check    validate policy directories (CI): exit 1 with file:line messages
    show     the effective policy of a (category, marketplace), or its HTTP JSON
    explain  assess local files as one listing and say why each image got its action
    impact   what a policy change does to a folder of listings, before it ships
    publish  put a policy set into a serve config's user_config and `serve deploy` it

Wired into `curator.cli` with `add_rules_commands(verbs)`; each sub-verb sets `run`, which returns
the process exit status. The in-process paths (explain, impact) use the same `LocalPipeline` and
`ListingAssessor` as `curator assess`, so they decide exactly as the service does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from curator import schemas
from curator.errors import PolicyError
from rules.loader import POLICY_DIR, load_policy_set, policy_set_from_texts, read_policy_texts
from rules.schema import (
    CATEGORY_PATTERN,
    MARKETPLACE_PATTERN,
    AllOf,
    AnyOf,
    Between,
    Comparison,
    Membership,
    Not,
    Rule,
    leaves,
)

if TYPE_CHECKING:
    from curator.assessment import FixedMeasurement, Fixer, MeasuredImage
    from curator.pipeline import LocalPipeline
    from rules.policy_set import PolicySet
    from rules.schema import FixRef, Policy

EXIT_OK = 0
EXIT_INVALID = 1  # a policy set does not load, or the command's input is unusable

DEFAULT_CATEGORY = "default"  # what a request without a category gets (schemas.AssessRequest)
DEFAULT_MARKETPLACE = "US"
INGRESS_DEPLOYMENT = "Curator"
DEFAULT_SERVE_CONFIG = Path(__file__).resolve().parent.parent / "graphs" / "serve_config.yaml"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif"})
DEFAULT_EXAMPLES = 5


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
    from curator.pipeline import LocalPipeline

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


def render_action(rule: Rule) -> str:
    """`warn -> fix pad_to_fill(fill_ratio=0.85), otherwise review`, `block -> reject`."""
    if rule.fix is None:
        return f"{rule.severity} -> {rule.action}"
    params = ", ".join(f"{key}={_value(value)}" for key, value in rule.fix.with_.items())
    return f"{rule.severity} -> fix {rule.fix.name}({params}), otherwise {rule.otherwise}"


def render_condition(condition: Any) -> str:
    """A condition as one readable expression, e.g. `any(a >= 0.98, b == false)`."""
    if isinstance(condition, Comparison):
        return f"{condition.attribute} {condition.op} {_value(condition.value)}"
    if isinstance(condition, Between):
        low, high = condition.between
        return f"{condition.attribute} between {_value(low)} and {_value(high)}"
    if isinstance(condition, Membership):
        values = ", ".join(_value(v) for v in condition.values)
        return f"{condition.attribute} {condition.op} {values}"
    if isinstance(condition, AllOf | AnyOf):
        name, children = ("all", condition.all_) if isinstance(condition, AllOf) else (
            "any", condition.any_)
        return f"{name}({', '.join(render_condition(child) for child in children)})"
    if isinstance(condition, Not):
        return f"not({render_condition(condition.not_)})"
    raise TypeError(f"not a condition: {condition!r}")


def _value(value: Any) -> str:
    """As written in a policy: YAML booleans, `1000` rather than the normalised `1000.0`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _measured(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _value(value)


def _provenance(sources: Sequence[str]) -> str:
    if not sources:
        return "?"
    changed = f", changed by {', '.join(sources[1:])}" if len(sources) > 1 else ""
    return f"{sources[0]}{changed}"


# --- explain ----------------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    from curator.assessment import ListingAssessor

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


def render_explanation(response: schemas.AssessResponse, policy: Policy) -> list[str]:
    rules = {rule.id: rule for rule in policy.rules}
    lines = [
        f"listing {response.listing_id}: {response.category} / {response.marketplace}, "
        f"policy {response.policy_id} (version {response.policy_version}, policy set "
        f"{response.policy_set_version})",
    ]
    for image in response.images:
        lines += ["", *_image_lines(image, rules)]
    lines += ["", "selection:"]
    lines += [f"  {step}" for step in response.selection.steps or [response.selection.reason]]
    return lines


def _image_lines(image: schemas.ImageAssessment, rules: dict[str, Rule]) -> list[str]:
    if image.status == "error" or image.verdict is None:
        error = image.error
        return [f"{image.image_id}: NOT ASSESSED: "
                f"{error.code + ': ' + error.message if error else 'no verdict'}"]
    quality = f", quality {image.quality.score:.3f}" if image.quality else ""
    duplicate = f", dropped as a near-duplicate of {image.duplicate_of}" if image.duplicate_of \
        else ""
    lines = [f"{image.image_id}: {str(image.action).upper()} as {image.verdict.evaluated_as} "
             f"image{quality}{duplicate}"]
    lines += _verdict_lines(image.verdict, rules, image.attributes or {}, indent="  ")
    if image.fix is not None:
        fix = image.fix
        lines.append(f"  fix: {' + '.join(fix.applied) or 'nothing applied'}; "
                     f"{'accepted' if fix.accepted else 'not accepted'}: {fix.reason}")
    if image.verdict_as_main is not None and image.verdict_as_main.violations:
        lines.append("  could not be the main image:")
        lines += _verdict_lines(image.verdict_as_main, rules, image.attributes or {},
                                indent="    ", with_unevaluated=False)
    return lines


def _verdict_lines(
    verdict: schemas.Verdict, rules: dict[str, Rule], attributes: dict[str, Any], indent: str,
    with_unevaluated: bool = True,
) -> list[str]:
    lines = []
    for violation in verdict.violations:
        rule = rules.get(violation.rule_id)
        action = render_action(rule) if rule is not None else violation.severity
        threshold = violation.threshold
        shown = ", ".join(_value(t) for t in threshold) if isinstance(threshold, list) \
            else _value(threshold)
        lines.append(f"{indent}{violation.rule_id} ({action}): {violation.attribute} is "
                     f"{_measured(violation.measured)}, required {violation.op} {shown}")
        lines.append(f"{indent}  {violation.message}")
    if with_unevaluated:
        for rule_id in verdict.not_evaluated:
            missing = _missing_attributes(rules.get(rule_id), attributes)
            lines.append(f"{indent}not evaluated: {rule_id} ({', '.join(missing)} not measured)")
    if not lines:
        lines.append(f"{indent}every rule for the {verdict.evaluated_as} role holds")
    return lines


def _missing_attributes(rule: Rule | None, attributes: dict[str, Any]) -> list[str]:
    if rule is None:
        return ["?"]
    names = [leaf.attribute for leaf, _ in leaves(rule.require)]
    return [name for name in dict.fromkeys(names) if attributes.get(name) is None]


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


@dataclass(frozen=True)
class Listing:
    listing_id: str
    files: tuple[tuple[str, Path], ...]  # (image id, path)


def find_listings(folder: Path) -> list[Listing]:
    """Each subfolder is one listing of the image files in it; each loose image file is a
    one-image listing."""
    listings = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = tuple((p.name, p) for p in sorted(entry.iterdir()) if _is_image(p))
            if files:
                listings.append(Listing(entry.name, files))
        elif _is_image(entry):
            listings.append(Listing(entry.name, ((entry.name, entry),)))
    return listings


def _is_image(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            and not path.name.startswith("."))


def measure_listings(
    pipeline: LocalPipeline, listings: Sequence[Listing]
) -> dict[str, list[MeasuredImage]]:
    """Every image through the stages once, a model batch at a time (the model inputs of a
    whole folder would not fit in memory)."""
    jobs = [(listing.listing_id, image_id, path)
            for listing in listings for image_id, path in listing.files]
    measured: dict[str, list[MeasuredImage]] = {listing.listing_id: [] for listing in listings}
    for start in range(0, len(jobs), pipeline.batch_size):
        batch = jobs[start:start + pipeline.batch_size]
        results = pipeline.run([(image_id, path.read_bytes()) for _, image_id, path in batch])
        for (listing_id, _, _), result in zip(batch, results, strict=True):
            measured[listing_id].append(result)
    return measured


@dataclass(frozen=True)
class ImageOutcome:
    role: str
    action: str
    violated: frozenset[str]  # rule ids violated in its role


@dataclass(frozen=True)
class ListingOutcome:
    main_image_id: str | None
    reason: str
    images: dict[str, ImageOutcome]  # assessable images only


def listing_outcome(response: schemas.AssessResponse) -> ListingOutcome:
    return ListingOutcome(
        response.selection.main_image_id,
        response.selection.reason,
        {
            image.image_id: ImageOutcome(
                image.verdict.evaluated_as, str(image.action),
                frozenset(v.rule_id for v in image.verdict.violations),
            )
            for image in response.images if image.verdict is not None
        },
    )


FixCache = dict[tuple[str, str, str], "FixedMeasurement"]


class ListingAssessments:
    """Listing outcomes, computed once per distinct effective policy: combinations (of either
    policy set) that resolve to the same rules and selection (same policy version) decide
    identically."""

    def __init__(self, listings: Sequence[Listing], measured: dict[str, list[MeasuredImage]],
                 pipeline: LocalPipeline | None) -> None:
        self.listings = listings
        self.measured = measured
        self.pipeline = pipeline  # None: no fixes
        self._by_version: dict[str, dict[str, ListingOutcome]] = {}
        # A fix's result depends on the file and the fix only, not on the policy: shared.
        self._fixes: FixCache = {}

    async def outcomes(
        self, policies: PolicySet, category: str, marketplace: str
    ) -> dict[str, ListingOutcome]:
        from curator.assessment import ListingAssessor

        version = policies.resolve(category, marketplace).version
        if version not in self._by_version:
            assessor = ListingAssessor(policies)
            outcomes = {}
            for listing in self.listings:
                images = self.measured[listing.listing_id]
                response = await assessor.assess(
                    listing_id=listing.listing_id, category=category, marketplace=marketplace,
                    images=images, roles=[None] * len(images), fixer=self._fixer(listing),
                    include_fixed_images=False,
                )
                outcomes[listing.listing_id] = listing_outcome(response)
            self._by_version[version] = outcomes
        return self._by_version[version]

    def _fixer(self, listing: Listing) -> Fixer | None:
        pipeline = self.pipeline
        if pipeline is None:
            return None
        paths = dict(listing.files)

        async def fix(image_id: str, fixes: Sequence[FixRef]) -> FixedMeasurement:
            key = (listing.listing_id, image_id, _fixes_key(fixes))
            if key not in self._fixes:
                run = pipeline.fixer({image_id: paths[image_id].read_bytes()})
                # Only the measurement decides; the fixed bytes would only fill memory.
                self._fixes[key] = replace(await run(image_id, fixes), data=None)
            return self._fixes[key]

        return fix


def _fixes_key(fixes: Sequence[FixRef]) -> str:
    return json.dumps([[f.name, f.with_] for f in fixes], sort_keys=True)


@dataclass
class Impact:
    """The changes between two assessments of the same listings."""

    listings: int = 0
    images: int = 0
    unassessable: int = 0
    verdicts_changed: int = 0  # the set of rules an image violates in its role
    actions_changed: Counter[str] = field(default_factory=Counter)  # "approve -> review": n
    actions_old: Counter[str] = field(default_factory=Counter)
    actions_new: Counter[str] = field(default_factory=Counter)
    main_changed: int = 0
    image_examples: list[dict[str, Any]] = field(default_factory=list)
    main_examples: list[dict[str, Any]] = field(default_factory=list)
    # Digest of every change, so combinations that change alike are reported once.
    _changes: Any = field(default_factory=hashlib.sha256, repr=False)

    def add_listing(self, listing: Listing, old: ListingOutcome, new: ListingOutcome,
                    max_examples: int) -> None:
        self.listings += 1
        self.images += len(listing.files)
        self.unassessable += len(listing.files) - len(old.images)
        for image_id, before in old.images.items():
            after = new.images[image_id]
            self.actions_old[before.action] += 1
            self.actions_new[after.action] += 1
            if before == after or (before.violated == after.violated
                                   and before.action == after.action):
                continue
            self._changes.update(repr((listing.listing_id, image_id, before, after)).encode())
            self.verdicts_changed += before.violated != after.violated
            if before.action != after.action:
                self.actions_changed[f"{before.action} -> {after.action}"] += 1
            if len(self.image_examples) < max_examples:
                self.image_examples.append(_image_example(listing.listing_id, image_id, before,
                                                          after))
        if old.main_image_id != new.main_image_id:
            self._changes.update(repr((listing.listing_id, old.main_image_id,
                                       new.main_image_id)).encode())
            self.main_changed += 1
            if len(self.main_examples) < max_examples:
                self.main_examples.append({
                    "listing_id": listing.listing_id, "old": old.main_image_id,
                    "new": new.main_image_id, "new_reason": new.reason,
                })

    @property
    def fingerprint(self) -> tuple[str, ...]:
        """Equal for two combinations whose report would read the same."""
        return (self._changes.hexdigest(), repr(sorted(self.actions_old.items())),
                repr(sorted(self.actions_new.items())), str(self.unassessable))

    def add(self, other: Impact) -> None:
        """Sum the counts (not the examples) of another combination into this total."""
        self.listings += other.listings
        self.images += other.images
        self.unassessable += other.unassessable
        self.verdicts_changed += other.verdicts_changed
        self.main_changed += other.main_changed
        for mine, theirs in ((self.actions_changed, other.actions_changed),
                             (self.actions_old, other.actions_old),
                             (self.actions_new, other.actions_new)):
            mine.update(theirs)

    @property
    def changed(self) -> bool:
        return bool(self.verdicts_changed or self.actions_changed or self.main_changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "listings": self.listings, "images": self.images, "unassessable": self.unassessable,
            "verdicts_changed": self.verdicts_changed,
            "actions_changed": sum(self.actions_changed.values()),
            "action_matrix": dict(sorted(self.actions_changed.items())),
            "actions_old": dict(sorted(self.actions_old.items())),
            "actions_new": dict(sorted(self.actions_new.items())),
            "main_changed": self.main_changed,
            "examples": {"images": self.image_examples, "main": self.main_examples},
        }


def _image_example(listing_id: str, image_id: str, before: ImageOutcome,
                   after: ImageOutcome) -> dict[str, Any]:
    return {
        "listing_id": listing_id, "image_id": image_id,
        "old": {"role": before.role, "action": before.action, "violated": sorted(before.violated)},
        "new": {"role": after.role, "action": after.action, "violated": sorted(after.violated)},
        "now_violated": sorted(after.violated - before.violated),
        "no_longer_violated": sorted(before.violated - after.violated),
    }


@dataclass(frozen=True)
class CombinationImpact:
    category: str
    marketplace: str
    old_policy: Policy
    new_policy: Policy
    impact: Impact

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category, "marketplace": self.marketplace,
            "old_policy": {"id": self.old_policy.id, "version": self.old_policy.version},
            "new_policy": {"id": self.new_policy.id, "version": self.new_policy.version},
            "same_rules": self.old_policy.version == self.new_policy.version,
            **self.impact.to_json(),
        }


def impact_combinations(
    old: PolicySet, new: PolicySet, categories: Sequence[str] | None,
    marketplaces: Sequence[str] | None,
) -> list[tuple[str, str]]:
    """The combinations asked for; by default every category either set defines (and the
    default category) in every marketplace either set defines, and (default, US)."""
    defined = [DEFAULT_CATEGORY, *sorted({*old.categories, *new.categories})]
    everywhere = sorted({*old.marketplaces, *new.marketplaces})
    combinations = [(c, m) for c in dict.fromkeys(categories or defined)
                    for m in dict.fromkeys(marketplaces or everywhere or [DEFAULT_MARKETPLACE])]
    if not categories and not marketplaces \
            and (DEFAULT_CATEGORY, DEFAULT_MARKETPLACE) not in combinations:
        combinations.append((DEFAULT_CATEGORY, DEFAULT_MARKETPLACE))
    return combinations


async def compute_impact(
    old: PolicySet, new: PolicySet, listings: Sequence[Listing],
    measured: dict[str, list[MeasuredImage]], combinations: Sequence[tuple[str, str]],
    pipeline: LocalPipeline | None, max_examples: int,
) -> list[CombinationImpact]:
    # One cache for both sets: a combination whose rules did not change is assessed once.
    assessments = ListingAssessments(listings, measured, pipeline)
    results = []
    for category, marketplace in combinations:
        before = await assessments.outcomes(old, category, marketplace)
        after = await assessments.outcomes(new, category, marketplace)
        impact = Impact()
        for listing in listings:
            impact.add_listing(listing, before[listing.listing_id], after[listing.listing_id],
                               max_examples)
        results.append(CombinationImpact(category, marketplace, old.resolve(category, marketplace),
                                         new.resolve(category, marketplace), impact))
    return results


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
    pipeline = local_pipeline()
    started = time.perf_counter()
    measured = measure_listings(pipeline, listings)
    measure_s = time.perf_counter() - started
    combinations = impact_combinations(old, new, args.category, args.marketplace)
    results = asyncio.run(compute_impact(old, new, listings, measured, combinations,
                                         None if args.no_fixes else pipeline, args.examples))
    total = Impact()
    for result in results:
        total.add(result.impact)
    if args.json:
        print(json.dumps({
            "old": {"dir": str(args.old), "policy_set_version": old.version},
            "new": {"dir": str(args.new), "policy_set_version": new.version},
            "listings": len(listings), "images": sum(len(x.files) for x in listings),
            "fixes_applied": not args.no_fixes,
            "combinations": [result.to_json() for result in results],
            "total": {k: v for k, v in total.to_json().items() if k != "examples"},
        }, indent=2))
    else:
        header = (f"policy impact: {args.old} (set {old.version}) -> {args.new} "
                  f"(set {new.version})\n{len(listings)} listings, "
                  f"{sum(len(x.files) for x in listings)} images, measured once in "
                  f"{measure_s:.1f} s; {len(results)} (category, marketplace) combinations"
                  f"{'; fixes not applied' if args.no_fixes else ''}")
        print("\n".join([header, *render_impact(results, total)]))
    return EXIT_OK


def render_impact(results: Sequence[CombinationImpact], total: Impact) -> list[str]:
    lines: list[str] = []
    groups: dict[tuple[str, ...], list[CombinationImpact]] = {}
    for result in results:
        if result.impact.changed:
            groups.setdefault(result.impact.fingerprint, []).append(result)
    for group in groups.values():
        lines += ["", *_group_header(group)]
        lines += [f"  {line}" for line in _impact_lines(group[0].impact)]
        lines += [f"  {line}" for line in _example_lines(group[0].impact)]
    unchanged = [f"{r.category}/{r.marketplace}"
                 + (" (same rules)" if r.old_policy.version == r.new_policy.version else "")
                 for r in results if not r.impact.changed]
    if unchanged:
        lines += ["", f"no change in {len(unchanged)} combinations:"]
        lines += textwrap.wrap(", ".join(unchanged), 96, initial_indent="  ",
                               subsequent_indent="  ")
    lines += ["", f"total over {len(results)} combinations ({total.listings} listing "
              f"assessments):"]
    lines += [f"  {line}" for line in _impact_lines(total, "image assessments")]
    return lines


def _group_header(group: Sequence[CombinationImpact]) -> list[str]:
    if len(group) == 1:
        result = group[0]
        return [f"{result.category} / {result.marketplace}: policy {result.new_policy.id} "
                f"{result.old_policy.version} -> {result.new_policy.version}"]
    names = ", ".join(f"{r.category}/{r.marketplace}" for r in group)
    return textwrap.wrap(f"{len(group)} combinations, each changed alike: {names}", 96,
                         subsequent_indent="  ")


def _impact_lines(impact: Impact, images: str = "images") -> list[str]:
    assessed = impact.images - impact.unassessable
    matrix = ", ".join(f"{k}: {v}" for k, v in sorted(impact.actions_changed.items())) or "none"
    actions = ", ".join(
        f"{action} {impact.actions_old[action]} -> {impact.actions_new[action]}"
        for action in ("approve", "fix", "review", "reject")
        if impact.actions_old[action] or impact.actions_new[action]
    )
    return [
        f"verdicts changed    {impact.verdicts_changed} of {assessed} {images}",
        f"actions changed     {sum(impact.actions_changed.values())}: {matrix}",
        f"actions             {actions or 'none'}",
        f"main image changed  {impact.main_changed} of {impact.listings} listings",
    ]


def _example_lines(impact: Impact) -> Iterator[str]:
    if impact.image_examples or impact.main_examples:
        yield "examples:"
    for example in impact.image_examples:
        # A loose file is a listing of its own, named like the image.
        where = example["image_id"] if example["listing_id"] == example["image_id"] \
            else f"{example['listing_id']} / {example['image_id']}"
        old, new = example["old"], example["new"]
        rules = [f"now violates {', '.join(example['now_violated'])}"] \
            if example["now_violated"] else []
        if example["no_longer_violated"]:
            rules.append(f"no longer violates {', '.join(example['no_longer_violated'])}")
        yield (f"  {where} ({new['role']}): "
               f"{old['action']} -> {new['action']}; {'; '.join(rules) or 'same rules violated'}")
    for example in impact.main_examples:
        yield (f"  {example['listing_id']}: main image {example['old']} -> {example['new']} "
               f"({example['new_reason']})")


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
    config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    try:
        if not isinstance(config, dict):
            raise ValueError("a serve config is a mapping with `applications`")
        with_policies(config, args.app, texts)
        _validate_serve_config(config)
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


def _validate_serve_config(config: dict[str, Any]) -> None:
    """ValueError unless Serve and the ingress would both accept the config."""
    from ray.serve.schema import ServeDeploySchema

    from curator.settings import CuratorConfig

    ServeDeploySchema.model_validate(config)  # pydantic's ValidationError is a ValueError
    for application in config["applications"]:
        for deployment in application.get("deployments") or []:
            if deployment.get("name") == INGRESS_DEPLOYMENT and "user_config" in deployment:
                CuratorConfig.model_validate(deployment["user_config"])


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
