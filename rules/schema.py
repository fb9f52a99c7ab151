"""The policy file format: pydantic models of a policy and its rules.

A policy is a list of rules. Each rule states a REQUIREMENT on an image's attributes (names from
`curator.contracts.vocabulary`); a violation is an image for which the requirement does not hold.

    policy: main-image-core
    description: Core main-image rules
    rules:
      - id: main.background.white
        description: Main image background must be white
        applies_to: main               # main | alternate | any
        require: {attribute: background.white_fraction, op: ">=", value: 0.97}
        severity: block                # block | warn | info
        action: reject                 # block: reject (default) or review; warn: review;
                                       # info: approve. Omitted: the severity's default.
        message: "Background is {measured:.1%} white; at least {threshold:.0%} is required"

Conditions (`require`) are data, never code:
    {attribute: A, op: "<" | "<=" | ">" | ">=" | "==" | "!=", value: V}
    {attribute: A, between: [LO, HI]}          inclusive
    {attribute: A, in: [V, ...]} / {attribute: A, not_in: [V, ...]}
    {all: [C, ...]}, {any: [C, ...]}, {not: C}

A rule may call for a fix instead of a verdict: `action: fix`, `fix: pad_to_fill` (or
`fix: {name: pad_to_fill, with: {fill_ratio: 0.85}}`), and `otherwise: reject | review` for when
the fix cannot resolve the violation without creating another (default: the severity's).

Everything that can be checked without an image is checked here, so a policy that loads can be
evaluated: attribute names, value kinds and ranges against the vocabulary, operators that make
sense for the kind, severity/action consistency, fix names and parameters, duplicate rule ids and
message placeholders.

Files are `PolicyFile`s: the root (no `extends`) holds the base rules; every other file extends
one parent and changes what it inherits (`rules` adds, `overrides` changes fields of, `disable`
drops), optionally scoped to a category, a marketplace or both. `rules.policy_set` layers them
into the effective `Policy` of a (category, marketplace).
"""

from __future__ import annotations

import hashlib
import json
import string
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from curator.contracts.ids import CATEGORY_PATTERN, MARKETPLACE_PATTERN, RULE_ID_PATTERN
from rules.conditions import (
    Condition,
    PolicyModel,
    Scalar,
    attribute_kind,
    display_threshold,
    fail_rule,
    failure_shapes,
    leaves,
)
from rules.fix_params import validate_fix_params

Severity = Literal["block", "warn", "info"]
Action = Literal["reject", "review", "fix", "approve"]
Fallback = Literal["reject", "review"]
AppliesTo = Literal["main", "alternate", "any"]
Concern = Literal["file", "content"]

# The actions each severity may take, the first being its default. A warning that rejected would
# be a block in disguise, and an info that did anything but approve would not be an info.
SEVERITY_ACTIONS: dict[str, tuple[str, ...]] = {
    "block": ("reject", "review", "fix"),
    "warn": ("review", "fix"),
    "info": ("approve",),
}
# Stronger first: the verdict of an image is its strongest violation's action. A fix ranks below
# review: an image that needs a person gets one even when part of it could be fixed.
ACTION_PRECEDENCE: tuple[Action, ...] = ("reject", "review", "fix", "approve")

MESSAGE_PLACEHOLDERS = frozenset({"measured", "threshold", "op", "attribute"})
DEFAULT_MESSAGE = "{attribute} is {measured}; required: {op} {threshold}"



_SAMPLE_MEASURED: dict[str, Any] = {"bool": True, "int": 1, "float": 0.5, "str": "X"}


class FixRef(PolicyModel):
    """A named fix (rules.fixes) and its parameters; `fix: name` in a file is `{name: name}`."""

    name: str
    with_: dict[str, Scalar] = Field(default_factory=dict, alias="with")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _known_fix(self) -> FixRef:
        try:
            validate_fix_params(self.name, self.with_)
        except ValueError as exc:
            fail_rule(str(exc), "name")
        return self


class Rule(PolicyModel):
    id: str = Field(pattern=RULE_ID_PATTERN)
    description: str = Field(min_length=1)
    applies_to: AppliesTo
    require: Condition
    severity: Severity
    # Optional in the file: the severity's default (see SEVERITY_ACTIONS) is filled in at load,
    # so that spelling the default out does not change the policy version.
    action: Action
    fix: FixRef | None = None
    # What a fix violation becomes when its fix fails; filled in like `action`.
    otherwise: Fallback | None = None
    message: str = DEFAULT_MESSAGE

    @model_validator(mode="before")
    @classmethod
    def _default_action(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("action") is None:
            # With an unknown severity the rule fails on `severity`; the placeholder only keeps
            # a second, misleading "action missing" out of the report.
            allowed = SEVERITY_ACTIONS.get(str(data.get("severity")), ("reject",))
            data = {**data, "action": allowed[0]}
        if isinstance(data, dict) and data.get("action") == "fix" and data.get("otherwise") is None:
            fallback = "review" if data.get("severity") == "warn" else "reject"
            data = {**data, "otherwise": fallback}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        allowed = SEVERITY_ACTIONS[self.severity]
        if self.action not in allowed:
            fail_rule(f"severity {self.severity} allows action {' or '.join(allowed)}, "
                  f"not {self.action}", "action")
        if (self.action == "fix") != (self.fix is not None):
            if self.fix is None:
                fail_rule("action fix needs `fix:` naming the fix", "action")
            fail_rule(f"`fix:` is only for action fix, not {self.action}", "fix")
        if self.otherwise is not None and self.action != "fix":
            fail_rule("`otherwise:` is only for action fix", "otherwise")
        if self.otherwise == "reject" and self.severity == "warn":
            fail_rule("a warning cannot fall back to reject; use severity block", "otherwise")
        self._check_message()
        return self

    def _check_message(self) -> None:
        """Reject unknown placeholders, and format specs that cannot format this rule's values
        (`{measured:.0%}` on a str attribute), by formatting every possible failure once."""
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(self.message)]
        except ValueError as exc:
            fail_rule(f"message template is malformed: {exc}", "message")
        for name in fields:
            if name is not None and name not in MESSAGE_PLACEHOLDERS:
                fail_rule(f"message placeholder {{{name}}} is unknown; use "
                      + ", ".join(f"{{{p}}}" for p in sorted(MESSAGE_PLACEHOLDERS)), "message")
        for leaf, negated in leaves(self.require):
            measured = _SAMPLE_MEASURED[attribute_kind(leaf.attribute)]
            for op, threshold in failure_shapes(leaf, negated):
                try:
                    self.message.format(
                        measured=measured,
                        threshold=display_threshold(op, threshold),
                        op=op,
                        attribute=leaf.attribute,
                    )
                except (ValueError, TypeError) as exc:
                    fail_rule(f"message {self.message!r} cannot format {leaf.attribute} "
                          f"(measured {type(measured).__name__}, threshold "
                          f"{display_threshold(op, threshold)!r}): {exc}", "message")

    def applies(self, role: str) -> bool:
        return self.applies_to in ("any", role)

    @property
    def concerns(self) -> Concern:
        """"file" when the rule reads only `file.*` attributes (size, format, colour mode): a
        warning about the upload that a seller fixes by re-exporting, not about what the picture
        shows. Selection weighs such violations least and the labelled evaluation, which judges
        content, leaves them out."""
        names = {leaf.attribute for leaf, _ in leaves(self.require)}
        return "file" if all(name.startswith("file.") for name in names) else "content"


def _duplicate_ids(rules: tuple[Rule, ...]) -> None:
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.id in seen:
            # ctx carries the index so the loader can point at the duplicate's line.
            raise PydanticCustomError(
                "duplicate_rule_id",
                "duplicate rule id '{rule_id}' (first defined as rule #{first})",
                {"rule_id": rule.id, "rule_index": index, "first": seen[rule.id] + 1},
            )
        seen[rule.id] = index


class SelectionSettings(PolicyModel):
    # pHash bits two images may differ by and still count as near-duplicates: re-encodes,
    # resizes and slight crops of one photo stay within about 6 of 64; different shots of one
    # product differ by 20 or more.
    duplicate_distance: int = Field(8, ge=0, le=32)


class Policy(PolicyModel):
    """An effective policy: the rules that decide images of one (category, marketplace)."""

    # The layers' ids joined by "+" (e.g. base+uk+apparel+apparel-uk) for a resolved policy.
    id: str = Field(alias="policy", pattern=r"^[a-z0-9][a-z0-9_.+-]*$")
    description: str = ""
    rules: tuple[Rule, ...]
    selection: SelectionSettings = SelectionSettings()
    # Which policy files made it, applied in this order (base first); not part of the version.
    layers: tuple[str, ...] = ()
    # rule id -> the policy files that defined and then changed it, in order.
    sources: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _not_empty(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        # A policy without rules approves everything; no file means that.
        if not rules:
            raise ValueError("a policy needs at least one rule")
        return rules

    @model_validator(mode="after")
    def _unique_ids(self) -> Policy:
        _duplicate_ids(self.rules)
        return self

    @cached_property
    def version(self) -> str:
        """First 12 hex chars of the sha256 of the canonical rules (sorted-keys JSON of the
        validated rules): comments, key order, quoting, `1` vs `1.0`, and which files the rules
        came from do not change it; two scopes deciding by the same rules share a version."""
        return content_hash(
            self.model_dump(mode="json", by_alias=True, include={"rules", "selection"})
        )

    def rules_for(self, role: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.applies(role))


def content_hash(content: Any) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


class Scope(PolicyModel):
    """Where a policy file applies: a category, a marketplace, or one category in one
    marketplace."""

    category: str | None = Field(default=None, pattern=CATEGORY_PATTERN)
    marketplace: str | None = Field(default=None, pattern=MARKETPLACE_PATTERN)

    @model_validator(mode="after")
    def _some_key(self) -> Scope:
        if self.category is None and self.marketplace is None:
            raise ValueError("a scope names a category, a marketplace or both")
        return self

    def __str__(self) -> str:
        return "/".join(part for part in (self.category, self.marketplace) if part)


class RuleOverride(PolicyModel):
    """Fields of an inherited rule to change; the rest are kept. The merged rule is validated
    as a whole when the policy set is resolved."""

    description: str | None = None
    applies_to: AppliesTo | None = None
    require: Condition | None = None
    severity: Severity | None = None
    action: Action | None = None
    fix: FixRef | None = None
    otherwise: Fallback | None = None
    message: str | None = None


class PolicyFile(PolicyModel):
    """One policy file as written. The root has rules and no `extends`; every other file extends
    a parent and may add, override and disable rules."""

    id: str = Field(alias="policy", pattern=RULE_ID_PATTERN)
    description: str = ""
    extends: str | None = Field(default=None, pattern=RULE_ID_PATTERN)
    scope: Scope | None = None
    rules: tuple[Rule, ...] = ()
    overrides: dict[str, RuleOverride] = Field(default_factory=dict)
    disable: tuple[str, ...] = ()
    selection: SelectionSettings | None = None  # the most specific layer that sets it wins

    @model_validator(mode="after")
    def _consistent(self) -> PolicyFile:
        _duplicate_ids(self.rules)
        if self.extends is None:
            if self.scope is not None:
                fail_rule("a scoped policy extends a parent (usually `extends: base`)", "scope")
            if self.overrides or self.disable:
                field = "overrides" if self.overrides else "disable"
                fail_rule("the root policy (no `extends`) has nothing to override or disable",
                          field)
            if not self.rules:
                fail_rule("the root policy (no `extends`) needs at least one rule", "rules")
        elif self.extends == self.id:
            fail_rule(f"policy {self.id} extends itself", "extends")
        for rule_id in self.disable:
            if rule_id in self.overrides:
                fail_rule(f"rule {rule_id} is both overridden and disabled", "disable")
        return self

    @property
    def is_root(self) -> bool:
        return self.extends is None

    def content(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
