"""Loading policy files: every load error names the file, the rule and the line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curator.contracts.errors import PolicyError
from rules.loader import POLICY_DIR, load_policy, load_policy_set

HEADER = "policy: test-policy\ndescription: test\nrules:\n"
GOOD_RULE = """\
  - id: good.rule
    description: fine
    applies_to: main
    require: {attribute: background.white_fraction, op: ">=", value: 0.97}
    severity: block
"""


def rule(require: str, *, rule_id: str = "bad.rule", extra: str = "",
         severity: str = "block") -> str:
    return (
        f"  - id: {rule_id}\n"
        "    description: under test\n"
        "    applies_to: main\n"
        f"    require: {require}\n"
        f"    severity: {severity}\n"
        f"{extra}"
    )


def marked_line(text: str) -> int:
    """The 1-based line carrying the `# <-` marker: where the error must point."""
    lines = [i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line]
    assert len(lines) == 1, "mark exactly one line"
    return lines[0]


# name -> (YAML text with the offending line marked, rule id expected, words of the message)
LOAD_ERRORS: dict[str, tuple[str, str, str]] = {
    "unknown-attribute": (
        HEADER + GOOD_RULE + rule('{attribute: background.white_fraktion, op: ">=", '
                                  'value: 0.9}  # <-'),
        "bad.rule",
        "unknown attribute 'background.white_fraktion' (did you mean background.white_fraction",
    ),
    "string-for-float": (
        HEADER + rule("\n      attribute: background.white_fraction\n      op: '>='\n"
                      "      value: high  # <-"),
        "bad.rule",
        "background.white_fraction must be float, got str",
    ),
    "number-above-range": (
        HEADER + rule("\n      attribute: background.white_fraction\n      op: '>='\n"
                      "      value: 1.5  # <-"),
        "bad.rule",
        "background.white_fraction=1.5 above maximum 1",
    ),
    "float-for-int": (
        HEADER + rule("\n      attribute: file.longest_side\n      op: '>='\n"
                      "      value: 999.5  # <-"),
        "bad.rule",
        "file.longest_side must be int, got float",
    ),
    "between-reversed": (
        HEADER + rule("\n      attribute: file.longest_side\n      between: [1000, 500]  # <-"),
        "bad.rule",
        "between [1000, 500]: the lower bound is above the upper bound",
    ),
    "bool-ordered": (
        HEADER + rule("\n      attribute: frame.border\n      op: '<'  # <-\n      value: true"),
        "bad.rule",
        "frame.border is bool: only == and != apply to it, not <",
    ),
    "unknown-op": (
        HEADER + rule("\n      attribute: file.longest_side\n      op: '=>'  # <-\n"
                      "      value: 500"),
        "bad.rule",
        "Input should be '<', '<=', '>', '>=', '==' or '!=', got '=>'",
    ),
    "unknown-severity": (
        HEADER + rule("{attribute: file.longest_side, op: '>=', value: 500}",
                      severity="blocker  # <-"),
        "bad.rule",
        "Input should be 'block', 'warn' or 'info', got 'blocker'",
    ),
    "unknown-action": (
        HEADER + rule("{attribute: file.longest_side, op: '>=', value: 500}",
                      extra="    action: delete  # <-\n"),
        "bad.rule",
        "Input should be 'reject', 'review', 'fix' or 'approve', got 'delete'",
    ),
    "action-inconsistent-with-severity": (
        HEADER + rule("{attribute: file.longest_side, op: '>=', value: 500}", severity="warn",
                      extra="    action: reject  # <-\n"),
        "bad.rule",
        "severity warn allows action review or fix, not reject",
    ),
    "duplicate-rule-id": (
        HEADER + GOOD_RULE + rule("{attribute: file.longest_side, op: '>=', value: 500}",
                                  rule_id="good.rule  # <-"),
        "good.rule",
        "duplicate rule id 'good.rule' (first defined as rule #1)",
    ),
    "unknown-placeholder": (
        HEADER + rule("{attribute: file.longest_side, op: '>=', value: 500}",
                      extra="    message: 'too small: {measured} < {minimum}'  # <-\n"),
        "bad.rule",
        "message placeholder {minimum} is unknown",
    ),
    "format-spec-misfit": (
        HEADER + rule("{attribute: file.format, in: [JPEG, PNG]}",
                      extra="    message: 'format {measured:.0%}'  # <-\n"),
        "bad.rule",
        "cannot format file.format",
    ),
    "unknown-key": (
        HEADER + rule("{attribute: file.longest_side, op: '>=', value: 500}",
                      extra="    severty: warn  # <-\n"),
        "bad.rule",
        "unknown key 'severty'",
    ),
    # A mapping that is no condition at all, nested in `all`: the error points inside the list.
    "not-a-condition": (
        HEADER + rule("\n      all:\n        - {attribute: file.longest_side, op: '>=', "
                      "value: 500}\n        - {size: large}  # <-"),
        "bad.rule",
        "a condition is {attribute, op, value}",
    ),
    "yaml-boolean-in-list": (
        HEADER + rule("\n      attribute: file.format\n      in: [JPEG, NO]  # <-"),
        "bad.rule",
        "unquoted yes/no/on/off/true/false are booleans",
    ),
    "missing-require": (
        HEADER + "  - id: bad.rule  # <-\n    description: x\n    applies_to: main\n"
        "    severity: block\n",
        "bad.rule",
        "missing key 'require'",
    ),
}


@pytest.mark.parametrize("name", LOAD_ERRORS, ids=LOAD_ERRORS)
def test_load_error_names_file_rule_and_line(tmp_path: Path, name: str) -> None:
    text, rule_id, words = LOAD_ERRORS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = info.value.message
    assert f"{path}:{marked_line(text)}: rule {rule_id}: " in message
    assert words in message
    assert info.value.code == "invalid_policy"
    assert info.value.field == str(path)


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = HEADER + rule("{attribute: file.longest_side, op: '>=', value: 5.5}") + rule(
        "{attribute: frame.borders, op: '==', value: true}", rule_id="other.rule"
    )
    path = tmp_path / "two.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    lines = info.value.message.splitlines()
    assert lines[0] == f"{path}: 2 problems"
    assert lines[1].startswith(f"  {path}:7: rule bad.rule: require.value: file.longest_side")
    assert lines[2].startswith(f"  {path}:12: rule other.rule: require.attribute: unknown")
    assert "did you mean frame.border" in lines[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEADER + GOOD_RULE + "    severity: warn\n", ":9: key 'severity' repeats the one at line 8"
         ),
        (HEADER + "  - id: [unclosed\n", ":5: not valid YAML"),
        ("", ":1: the policy file is empty"),
        ("- just\n- a list\n", ":1: a policy file is a mapping"),
        (HEADER, ":3: policy test-policy: rules: Input should be a valid tuple"),
        ("policy: p\nrules: []\n",
         ":2: policy p: rules: the root policy (no `extends`) needs at least one rule"),
        ("policy: Not An Id\n" + "rules:\n" + GOOD_RULE, ":1: policy Not An Id: policy:"),
    ],
    ids=["duplicate-key", "yaml-syntax", "empty", "not-a-mapping", "rules-null", "no-rules",
         "bad-policy-id"],
)
def test_file_level_errors_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.message.startswith(str(path))
    assert expected in info.value.message


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.yaml")


def _version_of(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return load_policy(path).version


BASE_TEXT = """\
policy: versioned
description: for the version test
rules:
  - id: r.white
    description: white
    applies_to: main
    require: {attribute: background.white_fraction, op: ">=", value: 0.97}
    severity: block
    message: "Background {measured:.0%}"
  - id: r.size
    description: size
    applies_to: any
    require: {attribute: file.longest_side, between: [500, 10000]}
    severity: warn
"""

# Same content: comments, key order, flow vs block style, quoting, 1 vs 1.0, explicit defaults.
REFORMATTED_TEXT = """\
# a comment
description: 'for the version test'
policy: "versioned"
rules:
  - require:
      value: 0.970
      op: '>='
      attribute: background.white_fraction
    severity: block
    action: reject          # the default of block, spelled out
    applies_to: main
    message: Background {measured:.0%}
    description: white
    id: r.white

  - {id: r.size, description: size, applies_to: any, severity: warn, action: review,
     require: {between: [500, 10000], attribute: file.longest_side}}
"""


def test_version_is_stable_under_reformatting(tmp_path: Path) -> None:
    base = _version_of(tmp_path, "a.yaml", BASE_TEXT)
    assert len(base) == 12
    int(base, 16)
    assert _version_of(tmp_path, "b.yaml", REFORMATTED_TEXT) == base


def test_int_and_float_thresholds_of_a_float_attribute_share_a_version(tmp_path: Path) -> None:
    one = BASE_TEXT.replace("value: 0.97", "value: 1")
    assert _version_of(tmp_path, "a.yaml", one) == _version_of(
        tmp_path, "b.yaml", one.replace("value: 1", "value: 1.0")
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("value: 0.97", "value: 0.96"),
        ("[500, 10000]", "[500, 9000]"),
        ("severity: warn", "severity: info"),
        ('message: "Background {measured:.0%}"', 'message: "Background is {measured:.0%}"'),
    ],
    ids=["threshold", "range-bound", "severity", "message"],
)
def test_version_changes_with_content(tmp_path: Path, old: str, new: str) -> None:
    assert old in BASE_TEXT
    changed = BASE_TEXT.replace(old, new)
    assert _version_of(tmp_path, "a.yaml", BASE_TEXT) != _version_of(tmp_path, "b.yaml", changed)


def test_the_shipped_policy_set_loads() -> None:
    policies = load_policy_set(POLICY_DIR)
    assert policies.root.id == "base"
    base = load_policy(POLICY_DIR / "base.yaml")
    # A category with no file of its own, in a marketplace without changes, is decided by base.
    assert policies.resolve("toys", "FR").version == base.version


def test_a_policy_id_defined_twice_is_refused(tmp_path: Path) -> None:
    shutil.copy(POLICY_DIR / "base.yaml", tmp_path / "a.yaml")
    shutil.copy(POLICY_DIR / "base.yaml", tmp_path / "b.yml")
    (tmp_path / "notes.txt").write_text("not a policy")
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path)
    assert info.value.message == (
        f"{tmp_path / 'b.yml'}:14: policy base: policy id 'base' is already defined in "
        f"{tmp_path / 'a.yaml'}"
    )


def test_a_set_with_two_roots_is_refused(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(HEADER.replace("test-policy", "one") + GOOD_RULE)
    (tmp_path / "two.yaml").write_text(HEADER.replace("test-policy", "two") + GOOD_RULE)
    with pytest.raises(PolicyError, match=r"exactly one root policy .* found 2"):
        load_policy_set(tmp_path)


def test_loading_stops_at_an_invalid_file(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(HEADER + GOOD_RULE)
    (tmp_path / "zbad.yaml").write_text(HEADER + GOOD_RULE.replace("block", "blocks"))
    with pytest.raises(PolicyError, match=r"zbad\.yaml:8: rule good\.rule: severity"):
        load_policy_set(tmp_path)


@pytest.mark.parametrize(
    ("make", "words"),
    [("empty", "no policy files (*.yaml) found"), ("missing", "not a directory of policy files")],
    ids=["empty", "missing"],
)
def test_a_policy_set_needs_policy_files(tmp_path: Path, make: str, words: str) -> None:
    directory = tmp_path / "policies"
    if make == "empty":
        directory.mkdir()
    with pytest.raises(PolicyError) as info:
        load_policy_set(directory)
    assert info.value.message == f"{directory}: {words}"
