"""The codes an experiment report carries and the note a reader sees beside each: the codes of
`experiments.stats`, and those the report adds for the split and the operational checks.
"""

from __future__ import annotations

from experiments import stats

RAMPED_SPLIT = "ramped_split"  # SRM: the split changed along the ramp; checked per step instead
NO_DECISIONS = "no_decisions"  # operational check: a variant has decided nothing yet

NOTES: dict[str, str] = {
    stats.NO_UNITS: "no unit has been exposed yet",
    stats.TOO_FEW_UNITS: "control or treatment has fewer than 2 units: nothing to compare yet",
    stats.ZERO_VARIANCE: "no spread in either variant (e.g. no conversions at all): "
    "the test is undefined",
    stats.NO_CONTROL_CONVERSIONS: "control has no conversions: the relative lift is undefined",
    stats.ZERO_CONTROL_MEAN: "control's mean is 0: the relative lift is undefined",
    stats.UNEXPECTED_UNITS: "units in a variant the split gives no traffic "
    "(weight 0, or a variant the experiment does not define)",
    RAMPED_SPLIT: "the split changes with each ramp step, so one check over the whole run means "
    "nothing; the canary checks the split per step",
    NO_DECISIONS: "control or treatment has no decisions yet",
}
