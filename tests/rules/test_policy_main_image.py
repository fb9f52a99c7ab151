"""Every rule of the base policy (rules/policies/base.yaml), on both sides of its threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from rules.evaluate import evaluate
from rules.loader import POLICY_DIR, load_policy
from rules.schema import Policy

POLICY = load_policy(POLICY_DIR / "base.yaml")

# A main image that satisfies every rule with a margin.
COMPLIANT_MAIN: dict[str, Any] = {
    "file.format": "JPEG",
    "file.longest_side": 1600,
    "file.animated": False,
    "file.color_mode": "RGB",
    "background.white_fraction": 0.995,
    "background.pure_white_fraction": 0.97,
    "frame.border": False,
    "composition.fill_ratio": 0.88,
    "composition.touches_edge": False,
    "composition.item_count": 1,
    "composition.multiple_items": False,
    "sharpness.score": 0.8,
    "quality.score": 0.75,
    "text.overlay": False,
    "people.person": False,
    "people.on_product": False,
    "background.transparent": False,
    "people.nudity": False,
    "quality.technical": 40.0,
}


@dataclass(frozen=True)
class Case:
    rule_id: str
    change: dict[str, Any]
    violated: bool
    role: str = "main"
    action: str = "approve"  # the verdict's action with only this change
    message: str | None = None  # the violation's exact message


CASES: dict[str, Case] = {
    # background
    "opaque": Case("main.background.opaque", {"background.transparent": False}, False),
    "transparent": Case(
        "main.background.opaque", {"background.transparent": True}, True, action="fix",
        message="The background is transparent; the main image needs a white (RGB 255,255,255) one",
    ),
    "white-at-threshold": Case("main.background.white", {"background.white_fraction": 0.97}, False),
    "white-below": Case(
        "main.background.white", {"background.white_fraction": 0.969}, True, action="reject",
        message="Background is 96.9% white; at least 97% is required (pure white RGB 255,255,255)",
    ),
    "pure-white-at-threshold": Case(
        "main.background.pure_white", {"background.pure_white_fraction": 0.90}, False
    ),
    "pure-white-below": Case(
        "main.background.pure_white", {"background.pure_white_fraction": 0.85}, True,
        action="fix",
        message="Only 85.0% of the background is pure white (255,255,255); at least 90% is "
        "expected: the backdrop looks off-white or grey",
    ),
    # frame
    "no-border": Case("main.frame.no_border", {"frame.border": False}, False),
    "border": Case(
        "main.frame.no_border", {"frame.border": True}, True, action="fix",
        message="A frame or line runs along an edge of the image; the main image must have no "
        "border",
    ),
    # fill
    "fill-at-minimum": Case(
        "main.fill.minimum", {"composition.fill_ratio": 0.65}, False, action="fix"
    ),
    "fill-below-minimum": Case(
        "main.fill.minimum", {"composition.fill_ratio": 0.64}, True, action="fix",
        message="The product spans only 64% of the frame; at least 65% is required "
        "(the marketplace asks for about 85%)",
    ),
    "fill-at-target": Case("main.fill.target", {"composition.fill_ratio": 0.80}, False),
    "fill-below-target": Case(
        "main.fill.target", {"composition.fill_ratio": 0.79}, True, action="fix",
        message="The product spans 79% of the frame; the marketplace asks for about 85% "
        "(review below 80%)",
    ),
    # cropping: touching an edge is fine only when the product spans the frame
    "edge-touch-spanning": Case(
        "main.composition.not_cropped",
        {"composition.touches_edge": True, "composition.fill_ratio": 0.98}, False,
    ),
    "edge-touch-not-spanning": Case(
        "main.composition.not_cropped",
        {"composition.touches_edge": True, "composition.fill_ratio": 0.97}, True,
        action="review",
        message="The product touches an image edge but spans only 97% of the frame (edge to "
        "edge is 98% or more): it looks cropped",
    ),
    "no-edge-touch": Case(
        "main.composition.not_cropped",
        {"composition.touches_edge": False, "composition.fill_ratio": 0.85}, False,
    ),
    # items
    "one-item": Case("main.composition.has_product", {"composition.item_count": 1}, False),
    "no-item": Case(
        "main.composition.has_product", {"composition.item_count": 0}, True, action="reject",
        message="No product was found on the background (0 objects)",
    ),
    "single-item": Case(
        "main.composition.single_item", {"composition.multiple_items": False}, False
    ),
    "two-items": Case(
        "main.composition.single_item", {"composition.multiple_items": True}, True,
        action="review",
        message="Several items, views or a collage are shown; the main image shows the product "
        "once (props, multiple views and collages are not allowed)",
    ),
    # sharpness
    "sharp-at-threshold": Case("main.sharpness.minimum", {"sharpness.score": 0.5}, False),
    "blurred": Case(
        "main.sharpness.minimum", {"sharpness.score": 0.42}, True, action="review",
        message="The product looks blurred: sharpness 0.42, below 0.50 (provisional threshold)",
    ),
    # size
    "zoom-at-threshold": Case("main.size.zoom", {"file.longest_side": 1000}, False),
    "no-zoom": Case(
        "main.size.zoom", {"file.longest_side": 999}, True, action="review",
        message="Longest side is 999 px; 1000 px or more is needed for zoom",
    ),
    "min-size-at-threshold": Case(
        "image.size.minimum", {"file.longest_side": 500}, False, action="review"
    ),
    "too-small": Case(
        "image.size.minimum", {"file.longest_side": 499}, True, action="review",
        message="Longest side is 499 px; the marketplace needs at least 500 px: upload a larger "
        "file of this photo",
    ),
    "max-size-at-threshold": Case("image.size.maximum", {"file.longest_side": 10000}, False),
    "too-large": Case(
        "image.size.maximum", {"file.longest_side": 10001}, True, action="fix",
        message="Longest side is 10001 px; the marketplace accepts at most 10000 px",
    ),
    "alt-min-size-at-threshold": Case(
        "image.size.minimum", {"file.longest_side": 500}, False, role="alternate"
    ),
    "alt-too-small": Case(
        "image.size.minimum", {"file.longest_side": 499}, True, role="alternate",
        action="review",
    ),
    # formats
    "png": Case("image.format.accepted", {"file.format": "PNG"}, False),
    "tiff": Case("image.format.accepted", {"file.format": "TIFF"}, False),
    "gif": Case("image.format.accepted", {"file.format": "GIF"}, False),
    "bmp": Case(
        "image.format.accepted", {"file.format": "BMP"}, True, action="reject",
        message="File format BMP is not supported; upload JPEG (preferred), PNG, TIFF or GIF",
    ),
    "jpeg-not-webp": Case("image.format.not_webp", {"file.format": "JPEG"}, False),
    "webp": Case(
        "image.format.not_webp", {"file.format": "WEBP"}, True, action="fix",
        message="File format is WEBP, which the marketplace does not accept; convert it to JPEG",
    ),
    "alt-webp": Case(
        "image.format.not_webp", {"file.format": "WEBP"}, True, role="alternate",
        action="fix",
    ),
    "still": Case("image.format.not_animated", {"file.animated": False}, False),
    "animated": Case(
        "image.format.not_animated", {"file.animated": True}, True, action="reject",
        message="The file is animated; upload a single still image (only its first frame was "
        "assessed)",
    ),
    "alt-quality-ok": Case(
        "alternate.quality.technical", {"quality.technical": 90.0}, False, role="alternate"
    ),
    "alt-quality-broken": Case(
        "alternate.quality.technical", {"quality.technical": 91.0}, True, role="alternate",
        action="review",
        message="Technical quality is very poor (BRISQUE 91, above 90) for an alternate image",
    ),
    # model-stage attributes
    "no-overlay-text": Case("main.text.no_overlay", {"text.overlay": False}, False),
    "overlay-text": Case(
        "main.text.no_overlay", {"text.overlay": True}, True, action="reject",
        message="Text lies on the background of the main image (added text, badge or "
        "watermark); the main image shows only the product",
    ),
    "no-nudity": Case("image.people.no_nudity", {"people.nudity": False}, False),
    "nudity": Case(
        "image.people.no_nudity", {"people.nudity": True}, True, action="reject",
        message="Nudity was detected; no image may show nudity",
    ),
    "alt-nudity": Case(
        "image.people.no_nudity", {"people.nudity": True}, True, role="alternate",
        action="reject",
    ),
    "no-person": Case("main.people.none", {"people.person": False}, False),
    "person": Case(
        "main.people.none", {"people.person": True}, True, action="review",
        message="A person (face, body or hand) is visible on the main image; show the product "
        "alone",
    ),
    "person-on-the-packaging": Case(
        "main.people.none", {"people.person": True, "people.on_product": True}, False,
    ),
    "technical-at-floor": Case("main.quality.technical", {"quality.technical": 80.0}, False),
    "technical-poor": Case(
        "main.quality.technical", {"quality.technical": 88.4}, True, action="review",
        message="Technical quality is poor (BRISQUE 88, above 80): the image looks blurred, "
        "noisy or over-compressed",
    ),
    "cmyk": Case("image.color_mode", {"file.color_mode": "CMYK"}, False),
    "rgba": Case(
        "image.color_mode", {"file.color_mode": "RGBA"}, True, action="approve",
        message="Colour mode is RGBA; the marketplace expects one of RGB, CMYK, so it will be "
        "converted",
    ),
}


def test_compliant_main_image_passes_every_rule() -> None:
    verdict = evaluate(POLICY, COMPLIANT_MAIN, "main")
    assert verdict.action == "approve"
    assert verdict.violations == ()
    assert verdict.not_evaluated == ()
    assert set(verdict.passed) == {rule.id for rule in POLICY.rules_for("main")}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_on_each_side_of_its_threshold(case: Case) -> None:
    verdict = evaluate(POLICY, {**COMPLIANT_MAIN, **case.change}, case.role)  # type: ignore[arg-type]
    by_rule = {v.rule_id: v for v in verdict.violations}
    assert verdict.action == case.action
    if not case.violated:
        assert case.rule_id in verdict.passed
        assert case.rule_id not in by_rule
        return
    violation = by_rule[case.rule_id]
    rule = next(r for r in POLICY.rules if r.id == case.rule_id)
    assert (violation.severity, violation.action) == (rule.severity, rule.action)
    assert violation.measured in case.change.values()
    if case.message is not None:
        assert violation.message == case.message


def test_every_rule_is_tested_on_both_sides() -> None:
    passing = {c.rule_id for c in CASES.values() if not c.violated}
    failing = {c.rule_id for c in CASES.values() if c.violated}
    rule_ids = {rule.id for rule in POLICY.rules}
    assert passing == rule_ids
    assert failing == rule_ids


def test_violation_reports_the_measured_value_and_threshold() -> None:
    verdict = evaluate(POLICY, {**COMPLIANT_MAIN, "background.white_fraction": 0.9}, "main")
    (violation,) = verdict.violations
    assert violation.rule_id == "main.background.white"
    assert violation.attribute == "background.white_fraction"
    assert violation.measured == 0.9
    assert violation.op == ">="
    assert violation.threshold == 0.97


def test_cropped_reports_the_fill_it_would_need() -> None:
    change = {"composition.touches_edge": True, "composition.fill_ratio": 0.9}
    verdict = evaluate(POLICY, {**COMPLIANT_MAIN, **change}, "main")
    (violation,) = verdict.violations
    assert (violation.attribute, violation.measured, violation.threshold) == (
        "composition.fill_ratio", 0.9, 0.98
    )


def test_alternate_images_get_only_the_looser_rules() -> None:
    lifestyle = {
        **COMPLIANT_MAIN,
        "background.white_fraction": 0.1,
        "background.pure_white_fraction": 0.0,
        "frame.border": True,
        "composition.fill_ratio": 0.3,
        "composition.item_count": 4,
        "composition.multiple_items": True,
        "sharpness.score": 0.2,
        "file.longest_side": 800,
        "text.overlay": True,
        "people.person": True,
    }
    assert evaluate(POLICY, lifestyle, "main").action == "reject"
    verdict = evaluate(POLICY, lifestyle, "alternate")
    assert verdict.action == "approve"
    assert verdict.violations == ()
    assert set(verdict.passed) == {r.id for r in POLICY.rules if r.applies_to != "main"}
    assert all(r.id.startswith("image.") for r in POLICY.rules if r.applies_to == "any")
    assert all(r.id.startswith("alternate.") for r in POLICY.rules
               if r.applies_to == "alternate")


def test_policy_identity() -> None:
    assert isinstance(POLICY, Policy)
    assert POLICY.id == "base"
    assert POLICY.layers == ("base",)
    assert len(POLICY.version) == 12
    int(POLICY.version, 16)
