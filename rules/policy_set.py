"""A policy set: policy files layered into the effective policy of each (category, marketplace).

One root file (no `extends`) holds the base rules. Every other file extends a parent and changes
what it inherits; a `scope` says where it applies. The effective policy of (C, M) applies, base
first, each later layer winning:

    base -> marketplace M -> for each category from the most general to C:
                                 category c -> category c in marketplace M

so marketplace+category beats category beats marketplace beats base, and a more specific
category (kids_apparel extends apparel) beats its parent's marketplace variant too. A file's
unscoped ancestors (shared building blocks) are applied just before it; a file is applied once.
A category or marketplace with no file of its own simply falls back to the layers above.

Everything is checked when the set is built: ids, one root, `extends` targets and cycles, one file
per scope, every `overrides`/`disable` naming a rule its file inherits, no rule added twice, and
every (category, marketplace) combination resolving to a valid policy. A set that builds cannot
fail to resolve at request time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property

from pydantic import ValidationError

from curator.contracts.errors import PolicyError
from rules.loader import PolicySource
from rules.schema import (
    SEVERITY_ACTIONS,
    Policy,
    PolicyFile,
    Rule,
    SelectionSettings,
    content_hash,
)

ScopeKey = tuple[str | None, str | None]  # (category, marketplace); None: any


class PolicySet:
    def __init__(self, sources: Sequence[PolicySource]) -> None:
        self.sources: dict[str, PolicySource] = {}
        for source in sources:
            if source.policy.id in self.sources:
                first = self.sources[source.policy.id]
                raise source.error(("policy",), f"policy id '{source.policy.id}' is already "
                                   f"defined in {first.path}")
            self.sources[source.policy.id] = source
        self.root = self._the_root()
        self._check_extends()
        self.by_scope = self._scopes()
        self._resolved: dict[ScopeKey, Policy] = {}
        for source in self.sources.values():
            self._apply([*self._chain(source.policy.id)], f"policy {source.policy.id}")
        # Resolve every combination now: a set that loads cannot fail at request time.
        for category in (None, *self.categories):
            for marketplace in (None, *self.marketplaces):
                self.resolve(category, marketplace)

    # --- what the set defines --------------------------------------------------------------

    @cached_property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({c for c, _ in self.by_scope if c is not None}))

    @cached_property
    def marketplaces(self) -> tuple[str, ...]:
        return tuple(sorted({m for _, m in self.by_scope if m is not None}))

    @cached_property
    def version(self) -> str:
        """Hash of every file's validated content: any change to any rule anywhere changes it."""
        return content_hash(sorted((pid, s.policy.content()) for pid, s in self.sources.items()))

    def policy(self, policy_id: str) -> PolicyFile:
        return self.sources[policy_id].policy

    # --- resolution ----------------------------------------------------------------------------

    def resolve(self, category: str | None, marketplace: str | None) -> Policy:
        """The effective policy of a listing's category and marketplace (unknown ones fall back)."""
        key: ScopeKey = (
            category if category in self.categories else None,
            marketplace if marketplace in self.marketplaces else None,
        )
        if key not in self._resolved:
            layers = self.layers(*key)
            where = f"category {key[0] or '*'} in marketplace {key[1] or '*'}"
            self._resolved[key] = self._apply(layers, where)
        return self._resolved[key]

    def layers(self, category: str | None, marketplace: str | None) -> list[str]:
        """The policy ids applied for (category, marketplace), base first (see module doc)."""
        order: list[str] = [self.root.id]

        def add(policy_id: str) -> None:
            order.extend(p for p in self._chain(policy_id) if p not in order)

        if marketplace is not None and (None, marketplace) in self.by_scope:
            add(self.by_scope[(None, marketplace)])
        for lineage_category in self._category_lineage(category):
            add(self.by_scope[(lineage_category, None)])
            if marketplace is not None and (lineage_category, marketplace) in self.by_scope:
                add(self.by_scope[(lineage_category, marketplace)])
        if category is not None and (category, marketplace) in self.by_scope:
            add(self.by_scope[(category, marketplace)])  # a category known only per marketplace
        return order

    def _category_lineage(self, category: str | None) -> list[str]:
        """The categories C descends from through `extends`, most general first, C last."""
        if category is None or (category, None) not in self.by_scope:
            return []
        lineage = []
        for policy_id in self._chain(self.by_scope[(category, None)]):
            scope = self.policy(policy_id).scope
            if scope is not None and scope.category is not None and scope.marketplace is None:
                lineage.append(scope.category)
        return lineage

    def _chain(self, policy_id: str) -> list[str]:
        """The ancestors of a file below the root, oldest first, then the file itself."""
        chain: list[str] = []
        current: str | None = policy_id
        while current is not None and current != self.root.id:
            chain.append(current)
            current = self.policy(current).extends
        return chain[::-1]

    def _apply(self, layers: Iterable[str], where: str) -> Policy:
        rules: dict[str, Rule] = {rule.id: rule for rule in self.root.rules}
        sources: dict[str, list[str]] = {rule.id: [self.root.id] for rule in self.root.rules}
        applied = [self.root.id]
        selection = self.root.selection
        for policy_id in layers:
            if policy_id == self.root.id:
                continue
            source = self.sources[policy_id]
            _apply_layer(source, rules, sources, where)
            selection = source.policy.selection or selection
            applied.append(policy_id)
        last = self.policy(applied[-1])
        try:
            return Policy.model_validate({
                "policy": "+".join(applied),
                "description": last.description or self.root.description,
                "rules": list(rules.values()),
                "selection": selection or SelectionSettings(),
                "layers": applied,
                "sources": {rule_id: tuple(ids) for rule_id, ids in sources.items()},
            })
        except ValidationError as exc:
            raise PolicyError(f"{where} ({' + '.join(applied)}): "
                              f"{exc.errors()[0]['msg'].removeprefix('Value error, ')}",
                              field=self.sources[applied[-1]].path) from None

    # --- checks --------------------------------------------------------------------------------

    def _the_root(self) -> PolicyFile:
        roots = [s for s in self.sources.values() if s.policy.is_root]
        if len(roots) != 1:
            paths = ", ".join(s.path for s in roots) or "none"
            raise PolicyError(f"a policy set has exactly one root policy (a file without "
                              f"`extends`); found {len(roots)}: {paths}", field="extends")
        return roots[0].policy

    def _check_extends(self) -> None:
        for source in self.sources.values():
            parent_id = source.policy.extends
            if parent_id is not None and parent_id not in self.sources:
                known = ", ".join(sorted(self.sources))
                raise source.error(("extends",), f"extends unknown policy '{parent_id}' "
                                   f"(known: {known})")
        for source in self.sources.values():
            seen = [source.policy.id]
            parent_id = source.policy.extends
            while parent_id is not None:
                if parent_id in seen:
                    cycle = " -> ".join([*seen[seen.index(parent_id):], parent_id])
                    raise source.error(("extends",), f"cycle in extends: {cycle}")
                seen.append(parent_id)
                parent_id = self.policy(parent_id).extends
            parent = self.policy(source.policy.extends) if source.policy.extends else None
            scope, parent_scope = source.policy.scope, parent.scope if parent else None
            # A marketplace's rules reach only that marketplace: nothing elsewhere may inherit them.
            if parent_scope is not None and parent_scope.marketplace is not None and (
                scope is None or scope.marketplace != parent_scope.marketplace
            ):
                raise source.error(("extends",), f"extends {parent_scope} policy "
                                   f"'{source.policy.extends}' but is scoped to "
                                   f"{scope or 'everywhere'}")

    def _scopes(self) -> dict[ScopeKey, str]:
        by_scope: dict[ScopeKey, str] = {}
        for source in self.sources.values():
            scope = source.policy.scope
            if scope is None:
                continue
            key = (scope.category, scope.marketplace)
            if key in by_scope:
                other = self.sources[by_scope[key]]
                raise source.error(("scope",), f"scope {scope} is already taken by policy "
                                   f"{other.policy.id} ({other.path})")
            by_scope[key] = source.policy.id
        return by_scope


def _apply_layer(
    source: PolicySource, rules: dict[str, Rule], sources: dict[str, list[str]], where: str
) -> None:
    """Disable, override, then add: in place, on the rules inherited so far."""
    policy = source.policy
    context = "" if where == f"policy {policy.id}" else f" (resolving {where})"
    for index, rule_id in enumerate(policy.disable):
        if rule_id not in rules:
            raise source.error(("disable", index), f"disables rule {rule_id}, which it does "
                               f"not inherit{context}", subject=f"rule {rule_id}")
        del rules[rule_id]
        sources[rule_id].append(policy.id)
    for rule_id, override in policy.overrides.items():
        if rule_id not in rules:
            raise source.error(("overrides", rule_id), f"overrides rule {rule_id}, which it does "
                               f"not inherit{context}")
        rules[rule_id] = _overridden(source, rules[rule_id], override.model_dump(
            mode="json", by_alias=True, exclude_unset=True))
        sources[rule_id].append(policy.id)
    for index, rule in enumerate(policy.rules):
        if rule.id in rules:
            defined = " then ".join(sources[rule.id])
            raise source.error(("rules", index, "id"), f"rule {rule.id} is already defined by "
                               f"{defined}; change it with `overrides`{context}")
        rules[rule.id] = rule
        sources[rule.id] = [policy.id]


def _overridden(source: PolicySource, rule: Rule, changes: dict[str, object]) -> Rule:
    merged = {**rule.model_dump(mode="json", by_alias=True, exclude_none=True), **changes}
    # Fields derived from the severity follow a changed severity unless given: a block turned
    # warn cannot keep `reject`, and an action that is no longer a fix drops its fix.
    severity = str(merged["severity"])
    if "action" not in changes and merged["action"] not in SEVERITY_ACTIONS[severity]:
        merged.pop("action")
    if merged.get("action") != "fix":
        for key in ("fix", "otherwise"):
            if key not in changes:
                merged.pop(key, None)
    elif "otherwise" not in changes and severity == "warn" and merged.get("otherwise") == "reject":
        merged.pop("otherwise")
    try:
        return Rule.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [part for part in error["loc"] if isinstance(part, str | int)]
        field = (error.get("ctx") or {}).get("field")
        if field is not None:
            loc.append(str(field))
        message = str(error["msg"]).removeprefix("Value error, ")
        shown = ".".join(str(part) for part in loc)
        raise source.error(("overrides", rule.id, *loc),
                           f"{shown + ': ' if shown else ''}{message}") from None
