"""The identifier patterns, written once: the HTTP request models, the policy files, the
experiment configs, the CLI and the route paths all check against these."""

from __future__ import annotations

# Listing, image, outcome-event and decision ids from callers: printable, bounded, no spaces.
CALLER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
# A listing's category, as in the request and in a policy's `applies_to`.
CATEGORY_PATTERN = r"^[a-z0-9_\-]{1,64}$"
# A marketplace: an ISO 3166 alpha-2 region.
MARKETPLACE_PATTERN = r"^[A-Z]{2}$"
# A rule's id and a policy's `extends`: lower case, as written in the policy YAML.
RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
# An experiment's id, in the experiment config and in /v1/experiments/{id}/report.
EXPERIMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
