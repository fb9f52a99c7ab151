"""Rules + Action: policy files, their layering into effective policies, evaluation into
verdicts, fixes, and main-image selection.

Plain Python (no Ray): the ingress deployment, the CLI, the batch pipeline and the tests use it
alike.
"""

from rules.evaluate import ImageVerdict, NotEvaluated, Role, Violation, evaluate
from rules.loader import POLICY_DIR, load_policy, load_policy_set, policy_set_from_texts
from rules.policy_set import PolicySet
from rules.schema import Policy, Rule
from rules.selection import Candidate, Selection, select_main_image

__all__ = [
    "POLICY_DIR",
    "Candidate",
    "ImageVerdict",
    "NotEvaluated",
    "Policy",
    "PolicySet",
    "Role",
    "Rule",
    "Selection",
    "Violation",
    "evaluate",
    "load_policy",
    "load_policy_set",
    "policy_set_from_texts",
    "select_main_image",
]
