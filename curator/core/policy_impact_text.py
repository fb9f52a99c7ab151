"""`curator rules impact` as text: the changed (category, marketplace) combinations grouped by
how they changed, each with its counts and examples, then the unchanged ones and the total.
The JSON form is ImpactReport.to_json (curator.core.policy_impact)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curator.core.policy_impact import CombinationImpact, Impact


def render_impact(results: Sequence[CombinationImpact], total: Impact) -> list[str]:
    lines: list[str] = []
    groups: dict[tuple[str, ...], list[CombinationImpact]] = {}
    for result in results:
        if result.impact.changed:
            groups.setdefault(result.impact.fingerprint, []).append(result)
    for group in groups.values():
        lines += ["", *_group_header(group)]
        lines += [f"  {line}" for line in _impact_lines(group[0].impact)]
        lines += [f"  {line}" for line in _example_lines(group[0].impact)]
    unchanged = [f"{r.category}/{r.marketplace}"
                 + (" (same rules)" if r.old_policy.version == r.new_policy.version else "")
                 for r in results if not r.impact.changed]
    if unchanged:
        lines += ["", f"no change in {len(unchanged)} combinations:"]
        lines += textwrap.wrap(", ".join(unchanged), 96, initial_indent="  ",
                               subsequent_indent="  ")
    lines += ["", f"total over {len(results)} combinations ({total.listings} listing "
              f"assessments):"]
    lines += [f"  {line}" for line in _impact_lines(total, "image assessments")]
    return lines


def _group_header(group: Sequence[CombinationImpact]) -> list[str]:
    if len(group) == 1:
        result = group[0]
        return [f"{result.category} / {result.marketplace}: policy {result.new_policy.id} "
                f"{result.old_policy.version} -> {result.new_policy.version}"]
    names = ", ".join(f"{r.category}/{r.marketplace}" for r in group)
    return textwrap.wrap(f"{len(group)} combinations, each changed alike: {names}", 96,
                         subsequent_indent="  ")


def _impact_lines(impact: Impact, images: str = "images") -> list[str]:
    assessed = impact.images - impact.unassessable
    matrix = ", ".join(f"{k}: {v}" for k, v in sorted(impact.actions_changed.items())) or "none"
    actions = ", ".join(
        f"{action} {impact.actions_old[action]} -> {impact.actions_new[action]}"
        for action in ("approve", "fix", "review", "reject")
        if impact.actions_old[action] or impact.actions_new[action]
    )
    return [
        f"verdicts changed    {impact.verdicts_changed} of {assessed} {images}",
        f"actions changed     {sum(impact.actions_changed.values())}: {matrix}",
        f"actions             {actions or 'none'}",
        f"main image changed  {impact.main_changed} of {impact.listings} listings",
    ]


def _example_lines(impact: Impact) -> Iterator[str]:
    if impact.image_examples or impact.main_examples:
        yield "examples:"
    for example in impact.image_examples:
        # A loose file is a listing of its own, named like the image.
        where = example["image_id"] if example["listing_id"] == example["image_id"] \
            else f"{example['listing_id']} / {example['image_id']}"
        old, new = example["old"], example["new"]
        rules = [f"now violates {', '.join(example['now_violated'])}"] \
            if example["now_violated"] else []
        if example["no_longer_violated"]:
            rules.append(f"no longer violates {', '.join(example['no_longer_violated'])}")
        yield (f"  {where} ({new['role']}): "
               f"{old['action']} -> {new['action']}; {'; '.join(rules) or 'same rules violated'}")
    for example in impact.main_examples:
        yield (f"  {example['listing_id']}: main image {example['old']} -> {example['new']} "
               f"({example['new_reason']})")
