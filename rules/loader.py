"""Load and validate policy files.

Every problem becomes a `PolicyError` whose message names the file, the line and the rule, e.g.

    rules/policies/base.yaml:14: rule main.background.white: require.value:
        background.white_fraction=1.2 above maximum 1

A policy set is a directory tree of such files (or, in a Serve user_config, a mapping of names to
texts); `rules.policy_set` checks how they fit together.

The YAML is composed once into nodes (which carry line numbers) and constructed from those same
nodes, so a pydantic error location such as ('rules', 3, 'require', 'value') can be walked back to
the exact node it concerns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from curator.contracts.errors import PolicyError
from rules.conditions import CONDITION_TAGS, RULE_ERROR
from rules.schema import Policy, PolicyFile

if TYPE_CHECKING:
    from rules.policy_set import PolicySet

logger = logging.getLogger(__name__)

# The policy files that ship with the service.
POLICY_DIR = Path(__file__).resolve().parent / "policies"
POLICY_SUFFIXES = (".yaml", ".yml")

# Pydantic's wording for these is generic; ours names the key.
_MISSING = "missing"
_EXTRA = "extra_forbidden"


@dataclass(frozen=True)
class PolicySource:
    """A validated policy file with the YAML nodes it came from, so that problems found later
    (when the policy set is resolved) still point at a file and line."""

    path: str  # as shown in messages: a file path, or a name from a user_config
    policy: PolicyFile
    root: yaml.Node = field(repr=False, compare=False)

    def error(
        self, loc: Sequence[str | int], message: str, subject: str | None = None
    ) -> PolicyError:
        """A PolicyError at the node of `loc` (the deepest that exists), naming the rule."""
        if subject is None:
            subject = f"policy {self.policy.id}"
            if len(loc) >= 2 and loc[0] in ("overrides", "disable") and isinstance(loc[1], str):
                subject = f"rule {loc[1]}"
            elif len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                subject = f"rule {self.policy.rules[loc[1]].id}"
        return PolicyError(f"{self.path}:{_line(_key_node_at(self.root, loc))}: {subject}: "
                           f"{message}", field=self.path)


def parse_policy_file(path: str, text: str) -> PolicySource:
    """Parse and validate the text of one policy file; PolicyError on any problem."""
    root, data = _parse(Path(path), text)
    if not isinstance(data, dict):
        raise PolicyError(
            f"{path}:{_line(root)}: a policy file is a mapping with keys policy, description "
            f"and rules, not a {type(data).__name__}",
            field=path,
        )
    try:
        policy = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(Path(path), root, data, exc), field=path) from None
    return PolicySource(path, policy, root)


def read_policy_file(path: str | Path) -> PolicySource:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc}", field=str(path)) from None
    return parse_policy_file(str(path), text)


def load_policy(path: str | Path) -> Policy:
    """One self-contained (root) policy file as an effective policy."""
    from rules.policy_set import PolicySet

    return PolicySet([read_policy_file(path)]).resolve(None, None)


def policy_files(directory: str | Path = POLICY_DIR) -> list[Path]:
    """The policy files (*.yaml, *.yml) under a directory, subdirectories included, in path order.
    PolicyError for a missing directory or one without policies (a service with no rules would
    approve everything)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError(f"{directory}: not a directory of policy files", field=str(directory))
    files = sorted(p for p in directory.rglob("*") if p.suffix in POLICY_SUFFIXES and p.is_file())
    if not files:
        raise PolicyError(f"{directory}: no policy files (*.yaml) found", field=str(directory))
    return files


def load_policy_set(directory: str | Path = POLICY_DIR) -> PolicySet:
    """Every policy file under `directory`, validated together (see rules.policy_set)."""
    from rules.policy_set import PolicySet

    policy_set = PolicySet([read_policy_file(file) for file in policy_files(directory)])
    logger.info("loaded policy set %s from %s (%d files)",
                policy_set.version, directory, len(policy_set.sources))
    return policy_set


def read_policy_texts(directory: str | Path = POLICY_DIR) -> dict[str, str]:
    """The files of a policy directory as {relative path: text}: the form in which a policy set
    travels in a Serve user_config."""
    directory = Path(directory)
    return {
        file.relative_to(directory).as_posix(): file.read_text(encoding="utf-8")
        for file in policy_files(directory)
    }


def policy_set_from_texts(files: Mapping[str, str]) -> PolicySet:
    """A policy set from {name: YAML text}, e.g. the `policies` of a user_config."""
    from rules.policy_set import PolicySet

    if not files:
        raise PolicyError("the policy set has no files", field="policies")
    return PolicySet([parse_policy_file(name, files[name]) for name in sorted(files)])


def _parse(path: Path, text: str) -> tuple[yaml.Node, Any]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise PolicyError(f"{path}:1: the policy file is empty", field=str(path))
        _reject_duplicate_keys(path, root)
        return root, loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}" if mark is not None else "?"
        problem = exc.problem or exc.context or "syntax error"
        raise PolicyError(f"{path}:{where}: not valid YAML: {problem}", field=str(path)) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}", field=str(path)) from None
    finally:
        loader.dispose()


def _reject_duplicate_keys(path: Path, root: yaml.Node) -> None:
    """PyYAML keeps the last of two equal keys silently; a rule with two `require:` would lose one.
    """
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases may share (or loop back to) a node
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key != "<<":
                    if key in keys:
                        raise PolicyError(
                            f"{path}:{_line(key_node)}: key '{key}' repeats the one at line "
                            f"{keys[key]}",
                            field=str(path),
                        )
                    keys[key] = _line(key_node)
                stack.extend((key_node, value_node))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _node_at(root: yaml.Node, loc: Sequence[str | int]) -> yaml.Node:
    """The deepest node along a pydantic location. Parts with no node (a missing key, a union tag)
    are skipped, so a missing key is reported at the line of the mapping that lacks it."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                    node = value_node
                    break
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
            node = node.value[part]
    return node


def _key_node_at(root: yaml.Node, loc: Sequence[str | int]) -> yaml.Node:
    """Like _node_at, but a location ending in a mapping key points at the key itself: the line
    of `main.size.zoom:`, not of the first line of the block under it."""
    if loc and isinstance(loc[-1], str):
        parent = _node_at(root, loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for key_node, _ in parent.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == loc[-1]:
                    return key_node
    return _node_at(root, loc)


def _describe(path: Path, root: yaml.Node, data: dict[str, Any], exc: ValidationError) -> str:
    lines = [_describe_one(path, root, data, error) for error in exc.errors()]
    if len(lines) == 1:
        return lines[0]
    return f"{path}: {len(lines)} problems\n" + "\n".join(f"  {line}" for line in lines)


def _describe_one(path: Path, root: yaml.Node, data: dict[str, Any], error: Any) -> str:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if "rule_index" in ctx:  # a policy-level check about one rule (duplicate id)
        loc = ("rules", int(ctx["rule_index"]), "id")
    elif error["type"] == RULE_ERROR and "field" in ctx:
        loc = (*loc, str(ctx["field"]))
    subject = f"policy {data.get('policy', '?')}"
    field_loc = loc
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        subject = f"rule {_rule_id(data, loc[1])}"
        field_loc = loc[2:]
    elif len(loc) >= 2 and loc[0] == "overrides" and isinstance(loc[1], str):
        subject = f"rule {loc[1]}"
        field_loc = loc[2:]
    field = _field_path(field_loc)
    line = _line(_node_at(root, loc))
    return f"{path}:{line}: {subject}: {field + ': ' if field else ''}{_message(error, loc)}"


def _rule_id(data: dict[str, Any], index: int) -> str:
    rules = data.get("rules")
    if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
        rule_id = rules[index].get("id")
        if isinstance(rule_id, str) and rule_id:
            return rule_id
    return f"#{index + 1} (no id)"


def _field_path(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part not in CONDITION_TAGS:
            text += f".{part}" if text else part
    return text


def _message(error: Any, loc: Sequence[str | int]) -> str:
    kind = error["type"]
    last = next((part for part in reversed(loc) if isinstance(part, str)), "")
    if kind == _MISSING:
        return f"missing key '{last}'"
    if kind == _EXTRA:
        return f"unknown key '{last}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    if kind not in ("value_error", RULE_ERROR) and isinstance(given, bool | int | float | str):
        message += f", got {given!r}"
    return message
