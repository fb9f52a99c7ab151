"""The dev-set phase of `make bench`: `curator eval` over the whole labelled set, in this
process, with the models of the benchmarked serve config, and the detection targets checked."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.targets import devset_targets


def measure_devset(app_args: dict[str, Any]) -> dict[str, Any]:
    from curator.core.evaluation import DEVSET_DIR, evaluate_devset, load_devset
    from curator.core.pipeline import LocalPipeline
    from curator.core.settings import ModelStageSettings
    from rules import POLICY_DIR, load_policy_set

    stages = ModelStageSettings.model_validate(app_args.get("models") or {})
    started = time.monotonic()
    report = evaluate_devset(load_devset(DEVSET_DIR), LocalPipeline(stages),
                             load_policy_set(POLICY_DIR))
    figures = report.to_dict()
    figures.pop("disagreements")  # the contact sheet's business (`curator eval`), not the report's
    return {**figures, "extractor_models": list(stages.extractor_models),
            "wall_s": round(time.monotonic() - started, 1), "targets": devset_targets(figures)}
