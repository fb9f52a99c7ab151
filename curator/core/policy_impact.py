"""Policy impact: what a change of policy set does to a folder of listings, before it ships.

Every image is measured once; each listing is then assessed under the old and the new policy set
in every (category, marketplace) asked for, and the verdicts, actions and main images compared.
`curator rules impact` prints the resulting `ImpactReport` as text or JSON. Assessment goes
through the same `LocalPipeline` and `ListingAssessor` as `curator assess`, so it decides exactly
as the service does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.contracts import schemas
from curator.core.assessment import ListingAssessor
from curator.core.policy_impact_text import render_impact

if TYPE_CHECKING:
    from curator.core.measured import FixedMeasurement, Fixer, MeasuredImage
    from curator.core.pipeline import LocalPipeline
    from rules.policy_set import PolicySet
    from rules.schema import FixRef, Policy

DEFAULT_CATEGORY = "default"  # what a request without a category gets (schemas.AssessRequest)
DEFAULT_MARKETPLACE = "US"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif"})
DEFAULT_EXAMPLES = 5  # examples of each kind of change reported per combination


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


def impact_report(
    old_dir: Path, old: PolicySet, new_dir: Path, new: PolicySet, listings: Sequence[Listing],
    pipeline: LocalPipeline, *, categories: Sequence[str] | None,
    marketplaces: Sequence[str] | None, max_examples: int, apply_fixes: bool,
) -> ImpactReport:
    """Measure every image of `listings` once, then weigh `new` against `old` in each
    combination asked for (see `impact_combinations`)."""
    started = time.perf_counter()
    measured = measure_listings(pipeline, listings)
    measure_s = time.perf_counter() - started
    combinations = impact_combinations(old, new, categories, marketplaces)
    results = asyncio.run(compute_impact(old, new, listings, measured, combinations,
                                         pipeline if apply_fixes else None, max_examples))
    total = Impact()
    for result in results:
        total.add(result.impact)
    return ImpactReport(old_dir, old, new_dir, new, listings, results, total, measure_s,
                        apply_fixes)


@dataclass(frozen=True)
class ImpactReport:
    """One run of `rules impact`: two policy sets weighed over one folder of listings."""

    old_dir: Path
    old: PolicySet
    new_dir: Path
    new: PolicySet
    listings: Sequence[Listing]
    results: Sequence[CombinationImpact]
    total: Impact  # the counts of every combination summed
    measure_s: float  # measuring every image once, in seconds
    fixes_applied: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "old": {"dir": str(self.old_dir), "policy_set_version": self.old.version},
            "new": {"dir": str(self.new_dir), "policy_set_version": self.new.version},
            "listings": len(self.listings), "images": sum(len(x.files) for x in self.listings),
            "fixes_applied": self.fixes_applied,
            "combinations": [result.to_json() for result in self.results],
            "total": {k: v for k, v in self.total.to_json().items() if k != "examples"},
        }

    def to_text(self) -> str:
        header = (f"policy impact: {self.old_dir} (set {self.old.version}) -> {self.new_dir} "
                  f"(set {self.new.version})\n{len(self.listings)} listings, "
                  f"{sum(len(x.files) for x in self.listings)} images, measured once in "
                  f"{self.measure_s:.1f} s; {len(self.results)} (category, marketplace) "
                  f"combinations{'' if self.fixes_applied else '; fixes not applied'}")
        return "\n".join([header, *render_impact(self.results, self.total)])
