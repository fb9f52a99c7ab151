"""Agreement with a human reviewer: the labelled development set and the figures over it.

The dev set (benchmarks/devset/) holds real product photos labelled by looking at them, following
the labelling guide (six yes/no labels per image, a category and a product group). Each group is
assessed as one listing by the real stages and rules, in this process, and the service's answer
is read back as the same six labels:

- white_background, overlay_text, person, multiple_items, border: the detections themselves
  (`PREDICTED_BY` names the attribute each one reads);
- main_image_compliant: the image's verdict as the main image of its category, content only (the
  guide's reviewer does not judge pixel size): no blocking content violation, and no content
  warning that needs a person. Warnings the policy fixes by itself (an off-white backdrop
  whitened, margins padded) leave the content as the reviewer sees it, so they do not count.

Per label: the confusion counts, precision, recall and F1; their macro F1; and the selection hit
rate: over the groups with at least one image labelled compliant, the share whose chosen main
image is one of them.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.core.assessment import ListingAssessor
from rules.evaluate import ImageVerdict, evaluate

if TYPE_CHECKING:
    from curator.core.measured import MeasuredImage
    from curator.core.pipeline import LocalPipeline
    from rules.policy_set import PolicySet

DEVSET_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "devset"

LABELS: tuple[str, ...] = (
    "white_background", "overlay_text", "person", "multiple_items", "border",
    "main_image_compliant",
)
# The attribute each detection label is read from (a bool in models/vocabulary.py).
PREDICTED_BY: dict[str, str] = {
    "white_background": "background.is_white",
    "overlay_text": "text.overlay",
    "person": "people.person",
    "multiple_items": "composition.multiple_items",
    "border": "frame.border",
}
CSV_HEADER: tuple[str, ...] = (
    "image", "group", "category", "source", "licence", "original_size", *LABELS, "notes",
)
CATEGORIES: frozenset[str] = frozenset({
    "apparel", "kids_apparel", "shoes", "jewelry", "electronics", "home", "sports",
    "collectibles", "default",
})
_ANSWERS = {"yes": True, "no": False}


class DevSetError(ValueError):
    """A labels file that does not follow the layout; the message names the file and row."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    image: str  # relative to the images folder, the row's key
    group: str
    category: str
    source: str
    licence: str
    labels: dict[str, bool]
    notes: str = ""


def load_devset(root: Path = DEVSET_DIR) -> list[LabelledImage]:
    """Every row of `root/labels/*.csv`, checked against the layout, images under `root/images`."""
    files = sorted((root / "labels").glob("*.csv"))
    if not files:
        raise DevSetError(f"no labels files in {root / 'labels'}")
    rows: list[LabelledImage] = []
    seen: set[str] = set()
    for labels_file in files:
        with labels_file.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != CSV_HEADER:
                raise DevSetError(f"{labels_file}: header must be {','.join(CSV_HEADER)}")
            for line, row in enumerate(reader, start=2):
                where = f"{labels_file}:{line}"
                rows.append(_labelled(root, row, where))
                if row["image"] in seen:
                    raise DevSetError(f"{where}: {row['image']} is labelled twice")
                seen.add(row["image"])
    return rows


def _labelled(root: Path, row: dict[str, str], where: str) -> LabelledImage:
    labels: dict[str, bool] = {}
    for label in LABELS:
        answer = (row[label] or "").strip().lower()
        if answer not in _ANSWERS:
            raise DevSetError(f"{where}: {label} must be yes or no, not {row[label]!r}")
        labels[label] = _ANSWERS[answer]
    if row["category"] not in CATEGORIES:
        raise DevSetError(f"{where}: unknown category {row['category']!r}")
    if not row["group"]:
        raise DevSetError(f"{where}: no group")
    path = root / "images" / row["image"]
    if not path.is_file():
        raise DevSetError(f"{where}: {path} does not exist")
    return LabelledImage(path, row["image"], row["group"], row["category"], row["source"],
                         row["licence"], labels, row.get("notes") or "")


def groups_of(images: Iterable[LabelledImage]) -> dict[str, list[LabelledImage]]:
    groups: dict[str, list[LabelledImage]] = {}
    for image in images:
        groups.setdefault(image.group, []).append(image)
    return groups


def predicted_compliant(verdict: ImageVerdict) -> bool:
    """The reviewer's main_image_compliant read from a verdict as main (see module doc)."""
    return not any(
        violation.concerns == "content"
        and (violation.severity == "block"
             or (violation.severity == "warn" and violation.action != "fix"))
        for violation in verdict.violations
    )


def predicted_labels(attributes: dict[str, Any], verdict_as_main: ImageVerdict
                     ) -> dict[str, bool | None]:
    """The six labels as the service answers them; None where the attribute was not measured."""
    predicted: dict[str, bool | None] = {}
    for label, attribute in PREDICTED_BY.items():
        value = attributes.get(attribute)
        predicted[label] = None if value is None else bool(value)
    predicted["main_image_compliant"] = predicted_compliant(verdict_as_main)
    return predicted


@dataclass
class LabelScore:
    label: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    unmeasured: int = 0  # images whose attribute was missing: counted as a "no" answer

    def add(self, truth: bool, predicted: bool | None) -> None:
        if predicted is None:
            self.unmeasured += 1
            predicted = False
        if truth and predicted:
            self.tp += 1
        elif truth:
            self.fn += 1
        elif predicted:
            self.fp += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        # With no positives in truth nor answer, F1 is undefined, not perfect.
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "unmeasured": self.unmeasured, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


@dataclass(frozen=True)
class ImageResult:
    labelled: LabelledImage
    predicted: dict[str, bool | None]
    attributes: dict[str, Any]
    boxes: tuple[Any, ...]  # DetectedBox
    violations: tuple[str, ...]  # rule ids of the verdict as main
    error: str | None = None

    @property
    def disagreements(self) -> list[str]:
        if self.error is not None:
            return []
        return [label for label in LABELS
                if bool(self.predicted[label]) != self.labelled.labels[label]]


@dataclass(frozen=True)
class GroupResult:
    group: str
    category: str
    main_image: str | None
    compliant_images: tuple[str, ...]  # labelled compliant by the reviewer
    steps: tuple[str, ...]

    @property
    def hit(self) -> bool | None:
        """None for a group the reviewer found no compliant image in."""
        if not self.compliant_images:
            return None
        return self.main_image in self.compliant_images


@dataclass
class EvaluationReport:
    images: list[ImageResult]
    groups: list[GroupResult]
    scores: dict[str, LabelScore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = {label: LabelScore(label) for label in LABELS}
        for result in self.images:
            if result.error is not None:
                continue
            for label in LABELS:
                self.scores[label].add(result.labelled.labels[label], result.predicted[label])

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the labels; a label with no positives either side counts 0."""
        return sum(score.f1 or 0.0 for score in self.scores.values()) / len(self.scores)

    @property
    def selection_groups(self) -> int:
        return sum(1 for group in self.groups if group.hit is not None)

    @property
    def selection_hits(self) -> int:
        return sum(1 for group in self.groups if group.hit)

    @property
    def selection_hit_rate(self) -> float | None:
        return self.selection_hits / self.selection_groups if self.selection_groups else None

    @property
    def errors(self) -> list[ImageResult]:
        return [result for result in self.images if result.error is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": len(self.images),
            "groups": len(self.groups),
            "errors": [{"image": r.labelled.image, "error": r.error} for r in self.errors],
            "labels": {label: score.to_dict() for label, score in self.scores.items()},
            "macro_f1": self.macro_f1,
            "selection": {"groups": self.selection_groups, "hits": self.selection_hits,
                          "hit_rate": self.selection_hit_rate},
            "selection_misses": [
                {"group": g.group, "main_image": g.main_image,
                 "compliant_images": list(g.compliant_images), "steps": list(g.steps)}
                for g in self.groups if g.hit is False
            ],
            "disagreements": [
                {"image": r.labelled.image, "labels": r.disagreements,
                 "violations": list(r.violations)}
                for r in self.images if r.disagreements
            ],
        }


def evaluate_devset(
    images: Sequence[LabelledImage], pipeline: LocalPipeline, policies: PolicySet,
    marketplace: str = "US",
) -> EvaluationReport:
    """Assess each group as one listing through the real stages, rules, fixes and selection."""

    assessor = ListingAssessor(policies)
    image_results: list[ImageResult] = []
    group_results: list[GroupResult] = []
    for group, members in groups_of(images).items():
        category = members[0].category
        files = {member.image: member.path.read_bytes() for member in members}
        measured = pipeline.run(list(files.items()))
        answer = asyncio.run(assessor.assess(
            listing_id=group, category=category, marketplace=marketplace,
            images=measured, roles=[None] * len(measured), fixer=pipeline.fixer(files),
            include_fixed_images=False,
        ))
        policy = assessor.policy_for(category, marketplace)
        image_results += [_image_result(member, found, policy)
                          for member, found in zip(members, measured, strict=True)]
        group_results.append(GroupResult(
            group=group, category=category, main_image=answer.selection.main_image_id,
            compliant_images=tuple(m.image for m in members if m.labels["main_image_compliant"]),
            steps=tuple(answer.selection.steps),
        ))
    return EvaluationReport(image_results, group_results)


def _image_result(labelled: LabelledImage, measured: MeasuredImage, policy: Any) -> ImageResult:
    if not measured.ok or measured.attributes is None:
        message = (measured.error or {}).get("message", "not assessed")
        return ImageResult(labelled, {}, {}, (), (), error=str(message))
    verdict = evaluate(policy, measured.attributes, "main")
    return ImageResult(
        labelled, predicted_labels(measured.attributes, verdict), measured.attributes,
        measured.boxes, tuple(v.rule_id for v in verdict.violations),
    )

