"""The conditions of a rule's `require:` (rules.schema): comparisons, ranges, membership and
their combinations, checked against the attribute vocabulary when a policy file loads, and the
shared strict base model of the policy format.

    {attribute: A, op: "<" | "<=" | ">" | ">=" | "==" | "!=", value: V}
    {attribute: A, between: [LO, HI]}          inclusive
    {attribute: A, in: [V, ...]} / {attribute: A, not_in: [V, ...]}
    {all: [C, ...]}, {any: [C, ...]}, {not: C}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NoReturn, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from curator.contracts import vocabulary

ComparisonOp = Literal["<", "<=", ">", ">=", "==", "!="]
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
Number = StrictInt | StrictFloat
# What a violation reports as its threshold: one value, the list of an `in`, or a (lo, hi) range.
Threshold = bool | int | float | str | tuple[Any, ...]

# The requirement that is violated when a negated comparison fails (`not: {a >= x}` is `a < x`).
INVERSE_OP: dict[str, str] = {
    "<": ">=", ">=": "<", ">": "<=", "<=": ">", "==": "!=", "!=": "==", "in": "not in",
}
_ORDERING_OPS = frozenset({"<", "<=", ">", ">="})


class PolicyModel(BaseModel):
    # Unknown keys are typos (`severty:`), never extensions: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def attribute_kind(name: str) -> str:
    try:
        return vocabulary.get(name).kind
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def normalise_value(name: str, value: Any) -> Any:
    """The canonical form of a rule value: ints given for a float attribute become floats, so that
    `0` and `0.0` give the same policy version."""
    try:
        kind = vocabulary.get(name).kind
    except KeyError:
        return value  # reported by the attribute validator
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# The error type of checks that span several fields of a model: ctx["field"] names the key the
# problem is about, so the loader reports that key's line rather than the line of the mapping.
RULE_ERROR = "policy_rule"


def fail_rule(detail: str, field: str) -> NoReturn:
    raise PydanticCustomError(RULE_ERROR, "{detail}", {"detail": detail, "field": field})


def check_rule_value(name: str, value: Any, field: str) -> None:
    if value is None:
        fail_rule(f"{name}: a rule cannot compare with null (missing values are skipped)", field)
    try:
        vocabulary.check_value(name, value)
    except ValueError as exc:
        hint = ""
        if isinstance(value, bool) and attribute_kind(name) == "str":
            hint = (f" ({value!r} in YAML: unquoted yes/no/on/off/true/false are booleans; "
                    "quote the string)")
        fail_rule(f"{exc}{hint}", field)


def _known_attribute(name: str) -> str:
    attribute_kind(name)
    return name


# Checked on the field itself, so an unknown name is reported at the `attribute:` line.
AttributeName = Annotated[str, AfterValidator(_known_attribute)]


class Comparison(PolicyModel):
    attribute: AttributeName
    op: ComparisonOp
    value: Scalar

    @model_validator(mode="before")
    @classmethod
    def _canonical_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and "attribute" in data and "value" in data:
            data = {**data, "value": normalise_value(str(data["attribute"]), data["value"])}
        return data

    @model_validator(mode="after")
    def _fits_attribute(self) -> Comparison:
        kind = attribute_kind(self.attribute)
        if kind in ("bool", "str") and self.op in _ORDERING_OPS:
            fail_rule(f"{self.attribute} is {kind}: only == and != apply to it, not {self.op}",
                      "op")
        check_rule_value(self.attribute, self.value, "value")
        return self


class Between(PolicyModel):
    """Inclusive range: lo <= attribute <= hi."""

    attribute: AttributeName
    between: tuple[Number, Number]

    @model_validator(mode="before")
    @classmethod
    def _canonical_bounds(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("between"), list | tuple):
            name = str(data.get("attribute"))
            data = {**data, "between": [normalise_value(name, v) for v in data["between"]]}
        return data

    @model_validator(mode="after")
    def _fits_attribute(self) -> Between:
        kind = attribute_kind(self.attribute)
        if kind not in ("int", "float"):
            fail_rule(f"{self.attribute} is {kind}: `between` needs a numeric attribute", "between")
        lo, hi = self.between
        for bound in (lo, hi):
            check_rule_value(self.attribute, bound, "between")
        if lo > hi:
            fail_rule(f"between [{lo}, {hi}]: the lower bound is above the upper bound", "between")
        return self


class Membership(PolicyModel):
    """`in` or `not_in` a list of allowed (or forbidden) values; exactly one of them."""

    attribute: AttributeName
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in")
    not_in: tuple[Scalar, ...] | None = None

    @model_validator(mode="after")
    def _fits_attribute(self) -> Membership:
        if (self.in_ is None) == (self.not_in is None):
            raise ValueError("give exactly one of `in` and `not_in`")
        field = "in" if self.in_ is not None else "not_in"
        values = self.values
        if not values:
            fail_rule("the list of values is empty", field)
        kind = attribute_kind(self.attribute)
        # Membership is exact equality: meaningless for floats, and a bool wants `==`.
        if kind not in ("str", "int"):
            fail_rule(f"{self.attribute} is {kind}: `{field}` needs a str or int attribute", field)
        for value in values:
            check_rule_value(self.attribute, value, field)
        return self

    @property
    def values(self) -> tuple[Any, ...]:
        return self.in_ if self.in_ is not None else (self.not_in or ())

    @property
    def op(self) -> str:
        return "in" if self.in_ is not None else "not in"


def _some_conditions(conditions: tuple[Any, ...]) -> tuple[Any, ...]:
    # Not `min_length`: that also fires, misleadingly, when the only item is invalid.
    if not conditions:
        raise ValueError("needs at least one condition")
    return conditions


class AllOf(PolicyModel):
    all_: Annotated[tuple[Condition, ...], AfterValidator(_some_conditions)] = Field(alias="all")


class AnyOf(PolicyModel):
    any_: Annotated[tuple[Condition, ...], AfterValidator(_some_conditions)] = Field(alias="any")


class Not(PolicyModel):
    not_: Condition = Field(alias="not")


Leaf = Comparison | Between | Membership

_TAG_BY_TYPE: dict[type, str] = {
    Comparison: "comparison",
    Between: "range",
    Membership: "membership",
    AllOf: "all_of",
    AnyOf: "any_of",
    Not: "negation",
}
# The tags pydantic inserts into an error's location; the loader drops them when it names a field.
CONDITION_TAGS = frozenset(_TAG_BY_TYPE.values())


def _condition_tag(data: Any) -> str | None:
    """Which kind of condition a mapping is, by its keys (composition keys win, then leaf keys)."""
    if not isinstance(data, dict):
        return _TAG_BY_TYPE.get(type(data))
    for key, tag in (("all", "all_of"), ("any", "any_of"), ("not", "negation")):
        if key in data:
            return tag
    if "attribute" in data:
        if "between" in data:
            return "range"
        if "in" in data or "not_in" in data:
            return "membership"
        return "comparison"
    return None


Condition = Annotated[
    Union[  # noqa: UP007 - the tagged members need the explicit Union form
        Annotated[Comparison, Tag("comparison")],
        Annotated[Between, Tag("range")],
        Annotated[Membership, Tag("membership")],
        Annotated[AllOf, Tag("all_of")],
        Annotated[AnyOf, Tag("any_of")],
        Annotated[Not, Tag("negation")],
    ],
    Discriminator(
        _condition_tag,
        custom_error_type="invalid_condition",
        custom_error_message=(
            "a condition is {attribute, op, value}, {attribute, between}, {attribute, in}, "
            "{attribute, not_in}, {all: [...]}, {any: [...]} or {not: {...}}"
        ),
    ),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


def leaves(condition: Any, negated: bool = False) -> list[tuple[Leaf, bool]]:
    """Every comparison of a condition with whether it sits under an odd number of `not`s."""
    if isinstance(condition, AllOf | AnyOf):
        children = condition.all_ if isinstance(condition, AllOf) else condition.any_
        return [pair for child in children for pair in leaves(child, negated)]
    if isinstance(condition, Not):
        return leaves(condition.not_, not negated)
    return [(condition, negated)]


def failure_shapes(leaf: Leaf, negated: bool) -> list[tuple[str, Threshold]]:
    """The (op, threshold) pairs a violation of this leaf can report: the requirement that failed.

    A failed range reports the bound it crossed, so a message reads "at least 500" or "at most
    10000" rather than a pair.
    """
    if isinstance(leaf, Comparison):
        return [(INVERSE_OP[leaf.op] if negated else leaf.op, leaf.value)]
    if isinstance(leaf, Between):
        if negated:
            return [("not between", leaf.between)]
        return [(">=", leaf.between[0]), ("<=", leaf.between[1])]
    return [(INVERSE_OP[leaf.op] if negated else leaf.op, leaf.values)]


def display_threshold(op: str, threshold: Threshold) -> Any:
    """What `{threshold}` shows in a message: lists as "JPEG, PNG", ranges as "500 to 10000"."""
    if isinstance(threshold, tuple):
        if op in ("between", "not between"):
            return f"{threshold[0]} to {threshold[1]}"
        return ", ".join(str(value) for value in threshold)
    return threshold
