"""Load and validate policy files.

Every problem becomes a `PolicyError` whose message names the file, the line and the rule, e.g.

    rules/policies/main_image.yaml:14: rule main.background.white: require.value:
        background.white_fraction=1.2 above maximum 1

The YAML is composed once into nodes (which carry line numbers) and constructed from those same
nodes, so a pydantic error location such as ('rules', 3, 'require', 'value') can be walked back to
the exact node it concerns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from curator.errors import PolicyError
from rules.schema import CONDITION_TAGS, RULE_ERROR, Policy

logger = logging.getLogger(__name__)

# The policy files that ship with the service.
POLICY_DIR = Path(__file__).resolve().parent / "policies"
POLICY_SUFFIXES = (".yaml", ".yml")

# Pydantic's wording for these is generic; ours names the key.
_MISSING = "missing"
_EXTRA = "extra_forbidden"


def load_policy(path: str | Path) -> Policy:
    """Parse and validate one policy file; PolicyError on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc}", field=str(path)) from None
    root, data = _parse(path, text)
    if not isinstance(data, dict):
        raise PolicyError(
            f"{path}:{_line(root)}: a policy file is a mapping with keys policy, description "
            f"and rules, not a {type(data).__name__}",
            field=str(path),
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_describe(path, root, data, exc), field=str(path)) from None
    logger.info("loaded policy %s version %s from %s (%d rules)",
                policy.id, policy.version, path, len(policy.rules))
    return policy


def load_policies(directory: str | Path = POLICY_DIR) -> dict[str, Policy]:
    """Every policy file (*.yaml, *.yml) of a directory, by policy id, in file-name order.

    PolicyError on the first invalid file, on two files declaring the same policy id, and on a
    directory without policies (a service with no rules would approve everything).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError(f"{directory}: not a directory of policy files", field=str(directory))
    files = sorted(p for p in directory.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file())
    if not files:
        raise PolicyError(f"{directory}: no policy files (*.yaml) found", field=str(directory))
    policies: dict[str, Policy] = {}
    sources: dict[str, Path] = {}
    for file in files:
        policy = load_policy(file)
        if policy.id in policies:
            raise PolicyError(
                f"{file}: policy id '{policy.id}' is already defined in {sources[policy.id]}",
                field=str(file),
            )
        policies[policy.id] = policy
        sources[policy.id] = file
    return policies


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
