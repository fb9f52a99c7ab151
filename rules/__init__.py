"""Rules + Action: policy files, their evaluation into verdicts, and main-image selection.

Plain Python (no Ray): the ingress deployment, the batch pipeline and the tests use it alike.
"""

from rules.evaluate import ImageVerdict, NotEvaluated, Role, Violation, evaluate
from rules.loader import POLICY_DIR, load_policies, load_policy
from rules.schema import Policy, Rule
from rules.selection import Candidate, Selection, select_main_image

__all__ = [
    "POLICY_DIR",
    "Candidate",
    "ImageVerdict",
    "NotEvaluated",
    "Policy",
    "Role",
    "Rule",
    "Selection",
    "Violation",
    "evaluate",
    "load_policies",
    "load_policy",
    "select_main_image",
]
