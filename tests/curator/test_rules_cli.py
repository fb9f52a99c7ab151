"""`curator rules ...`: check, show, explain, impact and publish, run in-process through
`curator.cli.main` (one subprocess checks the exit status CI sees)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from curator.cli import main
from curator.cli.rules import local_pipeline
from curator.core.measured import measure_locally
from curator.core.pipeline import LocalPipeline
from curator.core.policy_explain import render_condition
from rules import POLICY_DIR, load_policy_set, policy_set_from_texts
from rules.loader import read_policy_texts
from rules.schema import Rule
from tests.support import synthetic

ZOOM_LINE = 'require: {attribute: file.longest_side, op: ">=", value: 1000}'
OLD_ZOOM_PX, NEW_ZOOM_PX = 1000, 1300
# Longest sides on both sides of, and exactly at, both zoom thresholds.
LOOSE_SIDES = (640, 999, 1000, 1150, 1299, 1300, 1700)


@pytest.fixture(scope="module")
def pipeline() -> LocalPipeline:
    """The process-wide pipeline the commands use, loaded once for the module."""
    return local_pipeline()


def _jpeg(path: Path, size: tuple[int, int], **kwargs: Any) -> Path:
    path.write_bytes(synthetic.to_jpeg_bytes(synthetic.render_product(size=size, **kwargs)))
    return path


def _blocks(output: str) -> dict[str, str]:
    """`rules show` text: rule id -> its block."""
    blocks = [block for block in output.split("\n\n") if block.strip()]
    return {block.split()[0]: block for block in blocks[1:]}


# --- check ------------------------------------------------------------------------------------


def test_check_accepts_the_shipped_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    out = capsys.readouterr().out
    files = len(read_policy_texts(POLICY_DIR))
    assert out.startswith(f"ok: {files} files, ")
    assert f"policy set {load_policy_set().version}" in out


def test_check_names_file_line_and_rule_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, broken)
    base = broken / "base.yaml"
    lines = base.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if "value: 0.97" in line)
    lines[index] = lines[index].replace("value: 0.97", "value: 1.5")
    base.write_text("".join(lines))

    assert main(["rules", "check", str(POLICY_DIR), str(broken)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("ok: ")  # the good directory is still reported
    assert f"{base}:{index + 1}: rule main.background.white: require.value:" in captured.err


def test_check_exit_status_for_ci(tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, broken)
    (broken / "marketplaces" / "uk.yaml").write_text("policy: uk\nextends: nowhere\n")
    completed = subprocess.run(
        [sys.executable, "-m", "curator.cli", "rules", "check", str(broken)],
        capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 1
    assert "uk.yaml:2: policy uk: extends unknown policy 'nowhere'" in completed.stderr


# --- show -------------------------------------------------------------------------------------


def test_show_renders_precedence_for_uk_apparel(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "apparel", "UK"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("apparel / UK: policy base+uk+apparel+apparel-uk\n")
    assert "base -> uk -> apparel -> apparel-uk" in out
    blocks = _blocks(out)
    zoom = blocks["main.size.zoom"]
    assert "[main]  warn -> review" in zoom
    assert "require  file.longest_side >= 1600" in zoom
    assert "from     base, changed by apparel-uk" in zoom
    assert "from     apparel-uk" in blocks["main.people.on_model"]
    assert "info -> approve" in blocks["main.people.none"]
    assert "file.aspect_ratio between 0.7 and 0.8" in blocks["main.aspect.portrait"]
    assert ("fix pad_to_fill(fill_ratio=0.88, aspect_ratio=0.75), otherwise reject"
            in blocks["main.fill.minimum"])
    assert "disabled here" not in out


def test_show_kids_apparel_in_uk_drops_the_on_model_rule(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "show", "kids_apparel", "uk"]) == 0  # marketplace case is forgiven
    out = capsys.readouterr().out
    blocks = _blocks(out)
    assert "main.people.on_model" not in blocks
    assert "main.people.on_model  (from apparel-uk; disabled by kids-apparel-uk)" in out
    assert "require  file.longest_side >= 1600" in blocks["main.size.zoom"]  # still UK apparel
    people = blocks["main.people.none"]
    assert "block -> review" in people
    assert "from     base, changed by apparel, kids-apparel" in people


def test_show_says_when_nothing_specific_applies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "toys", "FR"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("toys / FR: policy base\n")
    assert "category toys and marketplace FR have no policy file of their own" in out


def test_show_json_is_the_http_answer(capsys: pytest.CaptureFixture[str]) -> None:
    from curator.contracts.schemas import PolicyResponse

    assert main(["rules", "show", "kids_apparel", "UK", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    PolicyResponse.model_validate(shown)
    # The builder GET /v1/policies/{category}/{marketplace} answers with.
    served = PolicyResponse.of(load_policy_set(), "kids_apparel", "UK")
    assert shown == served.model_dump(mode="json", exclude_none=True)
    assert {rule["id"]: rule["sources"] for rule in shown["rules"]}["main.size.zoom"] == [
        "base", "apparel-uk"]


def test_show_rejects_a_malformed_marketplace() -> None:
    with pytest.raises(SystemExit):
        main(["rules", "show", "apparel", "GBR"])


def _rule(require: dict[str, Any]) -> Rule:
    return Rule.model_validate({"id": "r", "description": "d", "applies_to": "main",
                                "require": require, "severity": "warn"})


@pytest.mark.parametrize(
    ("require", "expected"),
    [
        ({"attribute": "composition.fill_ratio", "op": ">=", "value": 0.8},
         "composition.fill_ratio >= 0.8"),
        ({"attribute": "quality.technical", "op": "<=", "value": 80},
         "quality.technical <= 80"),
        ({"attribute": "text.overlay", "op": "==", "value": False}, "text.overlay == false"),
        ({"attribute": "file.longest_side", "between": [500, 2100]},
         "file.longest_side between 500 and 2100"),
        ({"attribute": "file.format", "in": ["JPEG", "PNG"]}, "file.format in JPEG, PNG"),
        ({"attribute": "file.format", "not_in": ["GIF"]}, "file.format not in GIF"),
        ({"any": [{"attribute": "composition.fill_ratio", "op": ">=", "value": 0.98},
                  {"not": {"attribute": "composition.touches_edge", "op": "==", "value": True}}]},
         "any(composition.fill_ratio >= 0.98, not(composition.touches_edge == true))"),
        ({"all": [{"attribute": "file.longest_side", "op": ">=", "value": 500},
                  {"attribute": "file.animated", "op": "==", "value": False}]},
         "all(file.longest_side >= 500, file.animated == false)"),
    ],
    ids=["comparison", "float-written-as-int", "bool", "between", "in", "not-in", "any-not",
         "all"],
)
def test_conditions_read_as_written(require: dict[str, Any], expected: str) -> None:
    assert render_condition(_rule(require).require) == expected


# --- explain ----------------------------------------------------------------------------------


def test_explain_prints_violations_fixes_and_selection(
    tmp_path: Path, pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    small = _jpeg(tmp_path / "small.jpg", (800, 800), fill=0.6)
    near_white = _jpeg(tmp_path / "near.jpg", (1200, 1200), background=(250, 250, 250))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    fixed_dir = tmp_path / "fixed"

    assert main(["rules", "explain", str(small), str(near_white), str(broken),
                 "--write-fixed", str(fixed_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("listing local: default / US, policy base+us ")
    assert ("main.size.zoom (warn -> review): file.longest_side is 800, required >= 1000"
            in out)
    assert "Longest side is 800 px; 1000 px or more is needed for zoom" in out
    assert "main.fill.minimum (block -> fix pad_to_fill(" in out
    assert "near.jpg: FIX as main image" in out
    assert "fix: whiten_background; accepted:" in out
    assert "broken.jpg: NOT ASSESSED: unsupported_format" in out
    assert "selection:\n  ranked near.jpg (fixable" in out
    assert (fixed_dir / "near.fixed.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert f"wrote {fixed_dir / 'near.fixed.jpg'}" in out


# --- impact -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def impact_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two policy sets that differ in one threshold (the zoom size), and a folder of listings:
    loose files straddling both thresholds, and one two-image listing clear of both."""
    root = tmp_path_factory.mktemp("impact")
    old, new = root / "old", root / "new"
    shutil.copytree(POLICY_DIR, old)
    shutil.copytree(POLICY_DIR, new)
    base = (new / "base.yaml").read_text()
    assert base.count(ZOOM_LINE) == 1
    (new / "base.yaml").write_text(base.replace(ZOOM_LINE, ZOOM_LINE.replace(
        f"value: {OLD_ZOOM_PX}", f"value: {NEW_ZOOM_PX}")))
    images = root / "images"
    (images / "L-pair").mkdir(parents=True)
    for seed, side in enumerate(LOOSE_SIDES):
        _jpeg(images / f"p{side}.jpg", (side, round(side * 0.8)), seed=seed)
    _jpeg(images / "L-pair" / "a.jpg", (700, 700), seed=20)
    _jpeg(images / "L-pair" / "b.jpg", (1500, 1500), seed=21, background="busy")
    (images / "notes.txt").write_text("not an image")
    return {"old": old, "new": new, "images": images}


def _zoom_truth(images: Path) -> set[str]:
    """Loose images whose measured longest side lies between the two thresholds: the only ones
    whose main-image verdict the change can flip."""
    flipped = set()
    for path in sorted(images.glob("*.jpg")):
        attributes = measure_locally(path.read_bytes(), path.name).attributes
        assert attributes is not None
        if OLD_ZOOM_PX <= attributes["file.longest_side"] < NEW_ZOOM_PX:
            flipped.add(path.name)
    return flipped


def test_impact_reports_exactly_the_images_a_threshold_flips(
    impact_case: dict[str, Path], pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _zoom_truth(impact_case["images"])
    assert truth == {"p1000.jpg", "p1150.jpg", "p1299.jpg"}  # the fixture straddles both
    assert main(["rules", "impact", str(impact_case["images"]), "--old", str(impact_case["old"]),
                 "--new", str(impact_case["new"]), "--category", "default", "--category",
                 "apparel", "--marketplace", "US", "--marketplace", "UK", "--examples", "100",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["listings"] == len(LOOSE_SIDES) + 1 and report["images"] == len(LOOSE_SIDES) + 2
    by_combination = {(c["category"], c["marketplace"]): c for c in report["combinations"]}
    assert set(by_combination) == {("default", "US"), ("default", "UK"), ("apparel", "US"),
                                   ("apparel", "UK")}
    for key, combination in by_combination.items():
        # UK apparel sets its own 1600 px zoom: the base change cannot reach it.
        expected = set() if key == ("apparel", "UK") else truth
        examples = combination["examples"]["images"]
        assert {e["image_id"] for e in examples} == expected, key
        assert combination["verdicts_changed"] == len(expected)
        assert all(e["now_violated"] == ["main.size.zoom"] and not e["no_longer_violated"]
                   for e in examples)
        assert combination["action_matrix"] == ({"approve -> review": 3} if expected else {})
        assert combination["main_changed"] == 0
        assert combination["same_rules"] == (key == ("apparel", "UK"))
    assert report["total"]["verdicts_changed"] == 3 * len(truth)


def test_impact_text_groups_combinations_that_change_alike(
    impact_case: dict[str, Path], pipeline: LocalPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "impact", str(impact_case["images"]), "--old", str(impact_case["old"]),
                 "--new", str(impact_case["new"]), "--marketplace", "UK", "--examples", "2",
                 "--no-fixes"]) == 0
    out = capsys.readouterr().out
    combinations = 1 + len(load_policy_set().categories)  # default and each category, in UK
    assert f"{combinations} (category, marketplace) combinations" in out
    assert (f"{combinations - 2} combinations, each changed alike: default/UK, "
            in out.replace("\n  ", " "))
    assert "  actions changed     3: approve -> review: 3" in out
    assert "    p1000.jpg (main): approve -> review; now violates main.size.zoom" in out
    assert "p1299.jpg (main)" not in out  # only 2 examples
    assert "apparel/UK (same rules), kids_apparel/UK (same rules)" in out


# --- publish ----------------------------------------------------------------------------------


def test_publish_dry_run_writes_a_deployable_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ray.serve.schema import ServeDeploySchema

    output = tmp_path / "serve.yaml"
    assert main(["rules", "publish", str(POLICY_DIR), "--dry-run", "--output", str(output)]) == 0
    version = load_policy_set().version
    assert f"policy set {version} " in capsys.readouterr().out
    config = yaml.safe_load(output.read_text())
    ServeDeploySchema.model_validate(config)
    (application,) = config["applications"]
    ingress = next(d for d in application["deployments"] if d["name"] == "Curator")
    texts = ingress["user_config"]["policies"]
    assert texts == read_policy_texts(POLICY_DIR)  # every file, byte for byte
    assert policy_set_from_texts(texts).version == version
    # The rest of the config is deployed as it was.
    original = yaml.safe_load((Path(__file__).parents[2] / "graphs" /
                               "serve_config.yaml").read_text())
    ingress["user_config"].pop("policies")  # the rest of the user_config (admission) is kept
    assert config == original


def test_publish_deploys_through_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    output = tmp_path / "serve.yaml"
    assert main(["rules", "publish", str(POLICY_DIR), "--output", str(output),
                 "--address", "http://head:8265"]) == 0
    assert calls == [[sys.executable, "-m", "ray.serve.scripts", "deploy", str(output),
                      "--address", "http://head:8265"]]
    assert f"published policy set {load_policy_set().version}" in capsys.readouterr().out


def test_publish_refuses_a_broken_set_or_unknown_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, broken)
    (broken / "base.yaml").write_text("policy: base\nrules: []\n")
    output = tmp_path / "serve.yaml"
    assert main(["rules", "publish", str(broken), "--dry-run", "--output", str(output)]) == 1
    assert "base.yaml:" in capsys.readouterr().err
    assert not output.exists()
    assert main(["rules", "publish", str(POLICY_DIR), "--dry-run", "--output", str(output),
                 "--app", "nope"]) == 1
    assert "no application named 'nope' (applications: curator)" in capsys.readouterr().err
    assert not output.exists()


def test_impact_counts_main_image_changes_and_role_changes() -> None:
    from curator.core.policy_impact import ImageOutcome, Impact, Listing, ListingOutcome

    listing = Listing("L-1", (("a.jpg", Path("a.jpg")), ("b.jpg", Path("b.jpg"))))
    old = ListingOutcome("a.jpg", "a.jpg: compliant", {
        "a.jpg": ImageOutcome("main", "approve", frozenset()),
        "b.jpg": ImageOutcome("alternate", "approve", frozenset()),
    })
    new = ListingOutcome("b.jpg", "b.jpg: the only one compliant", {
        "a.jpg": ImageOutcome("alternate", "approve", frozenset()),
        "b.jpg": ImageOutcome("main", "approve", frozenset()),
    })
    impact = Impact()
    impact.add_listing(listing, old, new, max_examples=5)
    assert impact.main_changed == 1
    assert impact.main_examples == [{"listing_id": "L-1", "old": "a.jpg", "new": "b.jpg",
                                     "new_reason": "b.jpg: the only one compliant"}]
    # Same rules violated (none) and same action in the new role: not a verdict change.
    assert impact.verdicts_changed == 0 and not impact.actions_changed
    assert impact.changed

    unchanged = Impact()
    unchanged.add_listing(listing, old, old, max_examples=5)
    assert not unchanged.changed
    assert unchanged.fingerprint != impact.fingerprint
    again = Impact()
    again.add_listing(listing, old, new, max_examples=0)
    assert again.fingerprint == impact.fingerprint and not again.main_examples
