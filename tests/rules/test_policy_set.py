"""Policy sets: layering by category and marketplace, and the errors that stop a set loading."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from curator.contracts.errors import PolicyError
from models.preprocess import Preprocessor
from rules.evaluate import evaluate
from rules.loader import POLICY_DIR, load_policy_set, policy_set_from_texts
from rules.policy_set import PolicySet
from tests.support.synthetic import render_product, to_jpeg_bytes

ROOT = """\
policy: root
description: the root
rules:
  - id: main.size.zoom
    description: zoom
    applies_to: main
    require: {attribute: file.longest_side, op: ">=", value: 1000}
    severity: warn
  - id: main.fill.target
    description: fill
    applies_to: main
    require: {attribute: composition.fill_ratio, op: ">=", value: 0.8}
    severity: warn
"""


def zoom_layer(policy: str, scope: str, value: int, extends: str = "root") -> str:
    return (f"policy: {policy}\nextends: {extends}\nscope: {scope}\noverrides:\n"
            f"  main.size.zoom:\n"
            f"    require: {{attribute: file.longest_side, op: '>=', value: {value}}}\n")


def zoom_of(policies: PolicySet, category: str | None, marketplace: str | None) -> Any:
    policy = policies.resolve(category, marketplace)
    rule = next(r for r in policy.rules if r.id == "main.size.zoom")
    return rule.require.value  # type: ignore[union-attr]


# --- precedence ------------------------------------------------------------------------------


def test_marketplace_category_beats_category_beats_marketplace_beats_base() -> None:
    policies = policy_set_from_texts({
        "root.yaml": ROOT,
        "m.yaml": zoom_layer("uk", "{marketplace: UK}", 1100),
        "c.yaml": zoom_layer("apparel", "{category: apparel}", 1200),
        "cm.yaml": zoom_layer("apparel-uk", "{category: apparel, marketplace: UK}", 1300),
    })
    assert zoom_of(policies, "apparel", "UK") == 1300
    assert zoom_of(policies, "apparel", "DE") == 1200
    assert zoom_of(policies, "shoes", "UK") == 1100
    assert zoom_of(policies, "shoes", "DE") == 1000
    assert policies.resolve("apparel", "UK").layers == ("root", "uk", "apparel", "apparel-uk")
    assert policies.resolve("apparel", "UK").sources["main.size.zoom"] == (
        "root", "uk", "apparel", "apparel-uk")


def test_a_more_specific_category_beats_its_parents_marketplace_variant() -> None:
    policies = policy_set_from_texts({
        "root.yaml": ROOT,
        "c.yaml": zoom_layer("apparel", "{category: apparel}", 1200),
        "cm.yaml": zoom_layer("apparel-uk", "{category: apparel, marketplace: UK}", 1600),
        "kids.yaml": zoom_layer("kids", "{category: kids}", 900, extends="apparel"),
    })
    # kids inherits apparel, and apparel's UK variant applies to kids in the UK too, but the
    # kids file, more specific in category, has the last word.
    assert policies.layers("kids", "UK") == ["root", "apparel", "apparel-uk", "kids"]
    assert zoom_of(policies, "kids", "UK") == 900
    assert zoom_of(policies, "apparel", "UK") == 1600


def test_equal_rules_in_different_scopes_share_a_version() -> None:
    policies = policy_set_from_texts({
        "root.yaml": ROOT,
        "de.yaml": "policy: de\nextends: root\nscope: {marketplace: DE}\n",
    })
    assert policies.resolve(None, "DE").id == "root+de"
    assert policies.resolve(None, "DE").version == policies.resolve("toys", "FR").version


def test_a_changed_threshold_changes_the_versions_it_reaches() -> None:
    files = {"root.yaml": ROOT, "c.yaml": zoom_layer("apparel", "{category: apparel}", 1200)}
    before = policy_set_from_texts(files)
    after = policy_set_from_texts({**files, "c.yaml": zoom_layer("apparel",
                                                                 "{category: apparel}", 1250)})
    assert before.version != after.version
    assert before.resolve("apparel", "US").version != after.resolve("apparel", "US").version
    assert before.resolve("home", "US").version == after.resolve("home", "US").version


def test_an_override_of_severity_takes_that_severitys_default_action() -> None:
    policies = policy_set_from_texts({
        "root.yaml": ROOT.replace("severity: warn\n", "severity: block\n", 1),
        "c.yaml": "policy: c\nextends: root\nscope: {category: c}\noverrides:\n"
                  "  main.size.zoom: {severity: warn}\n",
    })
    assert policies.resolve(None, None).rules[0].action == "reject"
    assert policies.resolve("c", None).rules[0].action == "review"


# --- the shipped policies, on attributes ------------------------------------------------------

SHIPPED = load_policy_set(POLICY_DIR)
COMPLIANT_MAIN: dict[str, Any] = {
    "file.format": "JPEG", "file.longest_side": 1800, "file.animated": False,
    "file.color_mode": "RGB", "file.aspect_ratio": 0.75,
    "background.white_fraction": 0.995, "background.pure_white_fraction": 0.97,
    "frame.border": False, "composition.fill_ratio": 0.88, "composition.fill_area": 0.5,
    "composition.touches_edge": False, "composition.touches_sides": False,
    "composition.item_count": 1, "composition.multiple_items": False,
    "sharpness.score": 0.8, "quality.score": 0.75,
    "text.overlay": False, "people.person": False, "people.on_product": False,
    "people.nudity": False, "background.transparent": False,
    "quality.technical": 40.0,
}


def verdict_on(category: str, marketplace: str, role: str = "main", **change: Any) -> Any:
    policy = SHIPPED.resolve(category, marketplace)
    return evaluate(policy, {**COMPLIANT_MAIN, **change}, role)  # type: ignore[arg-type]


def violated(category: str, marketplace: str, role: str = "main", **change: Any) -> dict[str, str]:
    return {v.rule_id: v.action for v in verdict_on(category, marketplace, role,
                                                   **change).violations}


@pytest.mark.parametrize(
    ("category", "marketplace", "change", "expected"),
    [
        # base: a person on the main image is reviewed; UK clothing asks for one
        ("toys", "US", {"people.person": True}, {"main.people.none": "review"}),
        ("apparel", "US", {"people.person": True}, {"main.people.none": "approve"}),
        ("apparel", "UK", {"people.person": True}, {"main.people.none": "approve"}),
        ("apparel", "UK", {}, {"main.people.on_model": "review"}),
        # childrenswear: off-model, and exempt from the UK on-model rule
        ("kids_apparel", "UK", {}, {}),
        ("kids_apparel", "UK", {"people.person": True}, {"main.people.none": "review"}),
        ("kids_apparel", "DE", {"people.person": True}, {"main.people.none": "review"}),
        # zoom: 1000 px in general, 1600 px for UK clothing
        ("apparel", "US", {"file.longest_side": 1200}, {}),
        ("apparel", "UK", {"file.longest_side": 1200, "people.person": True},
         {"main.size.zoom": "review", "main.people.none": "approve"}),
        ("kids_apparel", "UK", {"file.longest_side": 1200}, {"main.size.zoom": "review"}),
        # UK clothing is portrait near 3:4; a square canvas is padded
        ("apparel", "UK", {"file.aspect_ratio": 1.0, "people.person": True},
         {"main.aspect.portrait": "fix", "main.people.none": "approve"}),
        # US jewelry: 500-2100 px and 80% fill (met by the crop-and-pad fix); elsewhere the
        # base numbers
        ("jewelry", "US", {"file.longest_side": 2500}, {"main.size.jewelry_range": "fix"}),
        ("jewelry", "JP", {"file.longest_side": 2500}, {}),
        ("jewelry", "US", {"composition.fill_ratio": 0.78}, {"main.fill.target": "fix"}),
        ("jewelry", "US", {"composition.fill_ratio": 0.60},
         {"main.fill.minimum": "fix", "main.fill.target": "fix"}),
        ("jewelry", "JP", {"composition.fill_ratio": 0.78}, {"main.fill.target": "fix"}),
        ("jewelry", "US", {"people.person": True}, {"main.people.none": "review"}),
        # shoes: several objects reviewed, feet blocked (reviewed)
        ("shoes", "US", {"composition.multiple_items": True},
         {"main.composition.single_item": "review"}),
        ("shoes", "IN", {"people.person": True}, {"main.people.none": "review"}),
        # electronics: accessories beside the device are noted; home: smooth goods are noted
        ("electronics", "DE", {"composition.multiple_items": True},
         {"main.composition.single_item": "approve"}),
        ("home", "JP", {"sharpness.score": 0.3}, {"main.sharpness.minimum": "approve"}),
        ("toys", "JP", {"sharpness.score": 0.3}, {"main.sharpness.minimum": "review"}),
        # adult apparel on a model cut off by the frame is not a cropped product, in every
        # marketplace; a garment alone touching the edge still is; kids' clothing is off-model
        *[("apparel", market, {"composition.touches_edge": True, "people.person": True},
           {"main.people.none": "approve"})
          for market in ("US", "UK", "DE", "JP", "IN")],
        ("apparel", "US", {"composition.touches_edge": True},
         {"main.composition.not_cropped": "review"}),
        # ... but a garment running off a side edge is a close-up (a cuff, a pocket), model or
        # not; a garment alone spanning the frame top to bottom is whole, as in the base policy
        *[("apparel", market, {"composition.touches_edge": True, "composition.touches_sides": True,
                               "people.person": True},
           {"main.people.none": "approve", "main.composition.not_cropped": "review"})
          for market in ("US", "UK")],
        ("apparel", "US", {"composition.touches_edge": True, "composition.fill_ratio": 0.99}, {}),
        ("apparel", "US", {"composition.touches_edge": True, "composition.touches_sides": True,
                           "composition.fill_ratio": 0.99},
         {"main.composition.not_cropped": "review"}),
        ("kids_apparel", "US", {"composition.touches_edge": True, "people.person": True},
         {"main.people.none": "review"}),
        # a model shown whole, head to feet, in a fifth of the frame is an outfit shot: reviewed;
        # framed on the garment (cut by the frame), filling 30%, or a flat-lay, it passes
        *[("apparel", market, {"people.person": True, "composition.fill_area": 0.2},
           {"main.people.none": "approve", "main.apparel.not_full_length": "review"})
          for market in ("US", "UK", "DE")],
        ("apparel", "US", {"people.person": True, "composition.fill_area": 0.3},
         {"main.people.none": "approve"}),
        ("apparel", "US", {"people.person": True, "composition.fill_area": 0.2,
                           "composition.touches_edge": True}, {"main.people.none": "approve"}),
        ("apparel", "US", {"composition.fill_area": 0.2}, {}),
        ("kids_apparel", "US", {"people.person": True, "composition.fill_area": 0.2},
         {"main.people.none": "review"}),
    ],
)
def test_shipped_precedence(category: str, marketplace: str, change: dict[str, Any],
                            expected: dict[str, str]) -> None:
    assert violated(category, marketplace, **change) == expected


def test_kids_alternates_with_a_person_are_reviewed() -> None:
    assert violated("kids_apparel", "US", "alternate", **{"people.person": True}) == {
        "alternate.people.kids": "review"}
    assert violated("apparel", "US", "alternate", **{"people.person": True}) == {}


def test_severity_and_action_of_the_shipped_fixes() -> None:
    verdict = verdict_on("toys", "US", **{"composition.fill_ratio": 0.6})
    assert verdict.action == "fix"
    assert [f.name for f in verdict.fixes] == ["pad_to_fill"]
    assert verdict.without_fixes().action == "reject"  # main.fill.minimum falls back to reject


def test_every_shipped_combination_resolves() -> None:
    for category in (None, *SHIPPED.categories):
        for marketplace in (None, *SHIPPED.marketplaces):
            assert SHIPPED.resolve(category, marketplace).rules
    assert set(SHIPPED.categories) == {
        "apparel", "kids_apparel", "shoes", "jewelry", "electronics", "home"}
    assert set(SHIPPED.marketplaces) == {"US", "UK", "DE", "JP", "IN"}


# --- the shipped policies, on generated images ------------------------------------------------


@pytest.fixture(scope="module")
def preprocessor() -> Preprocessor:
    return Preprocessor()


def measure(preprocessor: Preprocessor, size: tuple[int, int], fill: float = 0.88) -> dict:
    image = render_product(size=size, fill=fill, seed=3)
    return preprocessor.run(to_jpeg_bytes(image, quality=95)).attributes


@pytest.mark.parametrize(
    ("size", "category", "marketplace", "zoom_violated"),
    [
        ((900, 1200), "apparel", "US", False),  # 1200 px: zoom enough in general
        ((900, 1200), "apparel", "UK", True),  # UK clothing needs 1600
        ((1200, 1600), "apparel", "UK", False),
        ((900, 1200), "kids_apparel", "UK", True),  # childrenswear keeps the UK zoom
        ((700, 900), "home", "DE", True),
    ],
)
def test_zoom_precedence_on_generated_images(
    preprocessor: Preprocessor, size: tuple[int, int], category: str, marketplace: str,
    zoom_violated: bool,
) -> None:
    attributes = measure(preprocessor, size)
    verdict = evaluate(SHIPPED.resolve(category, marketplace), attributes, "main")
    assert ("main.size.zoom" in {v.rule_id for v in verdict.violations}) == zoom_violated


def test_jewelry_size_range_on_generated_images(preprocessor: Preprocessor) -> None:
    attributes = measure(preprocessor, (2400, 2400))
    us = evaluate(SHIPPED.resolve("jewelry", "US"), attributes, "main")
    jp = evaluate(SHIPPED.resolve("jewelry", "JP"), attributes, "main")
    assert {v.rule_id: v.action for v in us.violations} == {"main.size.jewelry_range": "fix"}
    assert us.violations[0].fix is not None and us.violations[0].fix.with_ == {"max_side": 2100}
    assert jp.violations == ()


def test_jewelry_fill_floor_on_generated_images(preprocessor: Preprocessor) -> None:
    attributes = measure(preprocessor, (1200, 1200), fill=0.78)
    assert attributes["composition.fill_ratio"] == pytest.approx(0.78, abs=0.01)
    us = evaluate(SHIPPED.resolve("jewelry", "US"), attributes, "main")
    home = evaluate(SHIPPED.resolve("home", "US"), attributes, "main")
    # Both below the 80% line, met by the fix; US jewelry pads tighter, to 90%.
    (us_fill,) = us.violations
    (home_fill,) = home.violations
    assert (us_fill.rule_id, us_fill.severity, us_fill.action) == ("main.fill.target", "warn",
                                                                    "fix")
    assert us_fill.fix is not None and dict(us_fill.fix.with_)["fill_ratio"] == 0.90
    assert home_fill.fix is not None and dict(home_fill.fix.with_)["fill_ratio"] == 0.85


# --- load errors: each names the file, the line and the rule ----------------------------------


def write_set(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (directory / name).write_text(text)


def marked(text: str) -> int:
    (line,) = [i for i, row in enumerate(text.splitlines(), 1) if "# <-" in row]
    return line


LAYER_ERRORS: dict[str, tuple[str, str, str]] = {
    # name -> (text of layer.yaml with the offending line marked, subject, words)
    "unknown-parent": (
        "policy: c\nextends: roots  # <-\nscope: {category: c}\n",
        "policy c", "extends unknown policy 'roots' (known: c, root, uk)",
    ),
    "override-unknown-rule": (
        "policy: c\nextends: root\nscope: {category: c}\noverrides:\n"
        "  main.size.zooom:  # <-\n    severity: info\n",
        "rule main.size.zooom", "overrides rule main.size.zooom, which it does not inherit",
    ),
    "disable-unknown-rule": (
        "policy: c\nextends: root\nscope: {category: c}\ndisable:\n  - main.nope  # <-\n",
        "rule main.nope", "disables rule main.nope, which it does not inherit",
    ),
    "duplicate-rule-across-layers": (
        "policy: c\nextends: root\nscope: {category: c}\nrules:\n"
        "  - id: main.size.zoom  # <-\n    description: again\n    applies_to: main\n"
        "    require: {attribute: file.longest_side, op: '>=', value: 1600}\n"
        "    severity: warn\n",
        "rule main.size.zoom", "rule main.size.zoom is already defined by root; change it with "
        "`overrides`",
    ),
    "override-breaks-the-rule": (
        "policy: c\nextends: root\nscope: {category: c}\noverrides:\n  main.size.zoom:\n"
        "    require: {attribute: file.longest_side, op: '>=', value: 10.5}  # <-\n",
        "rule main.size.zoom", "require.value: file.longest_side must be int, got float",
    ),
    "override-unknown-attribute": (
        "policy: c\nextends: root\nscope: {category: c}\noverrides:\n  main.size.zoom:\n"
        "    require: {attribute: file.longest, op: '>=', value: 10}  # <-\n",
        "rule main.size.zoom", "unknown attribute 'file.longest'",
    ),
    "unknown-fix": (
        "policy: c\nextends: root\nscope: {category: c}\noverrides:\n  main.size.zoom:\n"
        "    action: fix\n    fix: enlarge  # <-\n",
        "rule main.size.zoom", "unknown fix 'enlarge'",
    ),
    "unknown-fix-parameter": (
        "policy: c\nextends: root\nscope: {category: c}\nrules:\n  - id: main.fill.more\n"
        "    description: more\n    applies_to: main\n"
        "    require: {attribute: composition.fill_ratio, op: '>=', value: 0.85}\n"
        "    severity: warn\n    action: fix\n"
        "    fix: {name: pad_to_fill, with: {fill: 0.9}}  # <-\n",
        "rule main.fill.more", "fill",
    ),
    "scope-taken": (
        "policy: c\nextends: root\nscope: {marketplace: UK}  # <-\n",
        "policy c", "scope UK is already taken by policy uk",
    ),
    "marketplace-rules-leak": (
        "policy: c\nextends: uk  # <-\nscope: {category: c}\n",
        "policy c", "extends UK policy 'uk' but is scoped to c",
    ),
    "scoped-root": (
        "policy: c\nscope: {category: c}  # <-\nrules: []\n",
        "policy c", "a scoped policy extends a parent",
    ),
}


@pytest.mark.parametrize("name", LAYER_ERRORS, ids=LAYER_ERRORS)
def test_layer_errors_name_file_line_and_rule(tmp_path: Path, name: str) -> None:
    text, subject, words = LAYER_ERRORS[name]
    uk = "policy: uk\nextends: root\nscope: {marketplace: UK}\n"
    # Files load in name order: the layer comes last, so a clash is reported in it.
    write_set(tmp_path, {"root.yaml": ROOT, "a-uk.yaml": uk, "layer.yaml": text})
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path)
    assert info.value.message.startswith(f"{tmp_path / 'layer.yaml'}:{marked(text)}: {subject}: ")
    assert words in info.value.message


def test_a_cycle_in_extends_is_refused(tmp_path: Path) -> None:
    a = "policy: a\nextends: b  # <-\nscope: {category: a}\n"
    write_set(tmp_path, {"root.yaml": ROOT, "a.yaml": a,
                         "b.yaml": "policy: b\nextends: a\nscope: {category: b}\n"})
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path)
    assert info.value.message == (
        f"{tmp_path / 'a.yaml'}:{marked(a)}: policy a: cycle in extends: a -> b -> a")


def test_layers_that_clash_only_together_are_found_at_load(tmp_path: Path) -> None:
    # Each file is fine alone, but in (c, UK) the marketplace drops a rule the category changes.
    uk = "policy: uk\nextends: root\nscope: {marketplace: UK}\ndisable: [main.size.zoom]\n"
    c = "policy: c\nextends: root\nscope: {category: c}\noverrides:\n  main.size.zoom:  # <-\n" \
        "    severity: info\n"
    write_set(tmp_path, {"root.yaml": ROOT, "uk.yaml": uk, "c.yaml": c})
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path)
    assert info.value.message == (
        f"{tmp_path / 'c.yaml'}:{marked(c)}: rule main.size.zoom: overrides rule main.size.zoom, "
        "which it does not inherit (resolving category c in marketplace UK)"
    )


def test_a_broken_copy_of_the_shipped_set_is_refused(tmp_path: Path) -> None:
    shutil.copytree(POLICY_DIR, tmp_path / "policies")
    layer = tmp_path / "policies" / "categories" / "apparel-uk.yaml"
    layer.write_text(layer.read_text().replace("extends: apparel", "extends: apparels"))
    with pytest.raises(PolicyError, match=r"apparel-uk\.yaml:\d+: policy apparel-uk: extends "
                                          "unknown policy 'apparels'"):
        load_policy_set(tmp_path / "policies")
